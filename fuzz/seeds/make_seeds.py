#!/usr/bin/env python3
"""Writes the hand-made seed corpora under fuzz/seeds/<target>/.

Run from the repository root: python3 fuzz/seeds/make_seeds.py
Sources: the AWS SigV4 test suite (../shared/testdata, when present), the AWS S3
documentation examples, config.example.toml and deploy/configmap.yaml, and bodies framed
and signed here exactly as SDKs do (same fixed key as the aws_chunked target).
"""
import base64, hashlib, hmac, json, os, re, struct, sys, zlib

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
CORPUS = os.path.join(ROOT, "fuzz", "seeds")
SUITE = os.path.join(ROOT, "..", "shared", "testdata", "aws-signing-test-suite", "v4")


def put(target, name, data):
    d = os.path.join(CORPUS, target)
    os.makedirs(d, exist_ok=True)
    if isinstance(data, str):
        data = data.encode()
    with open(os.path.join(d, "seed-" + name), "wb") as f:
        f.write(data)


SIG = "f0e8bdb87c964420e857bd35b5d6ed310bd44f0170aba48dd91039c6036bdb41"

# ---- auth_header -------------------------------------------------------------------
def auth_header():
    n = 0
    if os.path.isdir(SUITE):
        for case in sorted(os.listdir(SUITE)):
            p = os.path.join(SUITE, case, "header-signed-request.txt")
            if not os.path.exists(p):
                continue
            for line in open(p, encoding="utf-8", errors="replace"):
                if line.lower().startswith("authorization:"):
                    put("auth_header", f"suite-{case}", line.split(":", 1)[1].strip())
                    n += 1
    base = "AWS4-HMAC-SHA256 Credential=AKIAIOSFODNN7EXAMPLE/20130524/us-east-1/s3/aws4_request"
    put("auth_header", "s3-get", f"{base},SignedHeaders=host;range;x-amz-content-sha256;x-amz-date,Signature={SIG}")
    put("auth_header", "s3-spaces", f"{base}, SignedHeaders=host;x-amz-content-sha256;x-amz-date, Signature={SIG}")
    put("auth_header", "sdk-put", "AWS4-HMAC-SHA256 Credential=SWXCDEQAKYQJINQQAH6X/20261201/us-east-1/s3/aws4_request, "
        "SignedHeaders=amz-sdk-invocation-id;amz-sdk-request;content-length;content-type;host;x-amz-checksum-crc32;"
        f"x-amz-content-sha256;x-amz-date;x-amz-decoded-content-length;x-amz-sdk-checksum-algorithm;x-amz-trailer;x-amz-user-agent, Signature={SIG}")
    put("auth_header", "sigv2", "AWS AKIAIOSFODNN7EXAMPLE:frJIUN8DYpKDtOLCwo//yllqDzg=")
    put("auth_header", "sigv4a", f"AWS4-ECDSA-P256-SHA256 Credential=AKIAIOSFODNN7EXAMPLE/20130524/s3/aws4_request,SignedHeaders=host,Signature={SIG}")
    put("auth_header", "repeated", f"{base},Credential=x,SignedHeaders=host,Signature={SIG}")
    put("auth_header", "amz-date", "20130524T000000Z")
    put("auth_header", "http-date", "Fri, 24 May 2013 00:00:00 GMT")
    return n

# ---- presigned_query ---------------------------------------------------------------
def presigned_query():
    if os.path.isdir(SUITE):
        for case in sorted(os.listdir(SUITE)):
            p = os.path.join(SUITE, case, "query-signed-request.txt")
            if not os.path.exists(p):
                continue
            first = open(p, encoding="utf-8", errors="replace").readline()
            m = re.match(r"\S+ [^?]*\?(.*) HTTP/1\.1", first.strip())
            if m:
                put("presigned_query", f"suite-{case}", m.group(1))
    q = ("X-Amz-Algorithm=AWS4-HMAC-SHA256&X-Amz-Credential=AKIAIOSFODNN7EXAMPLE%2F20130524%2Fus-east-1%2Fs3%2Faws4_request"
         "&X-Amz-Date=20130524T000000Z&X-Amz-Expires=86400&X-Amz-SignedHeaders=host"
         "&X-Amz-Signature=aeeed9bbccd4d02ee5c0109b86d86835f995330da4c265957d157751f604d404")
    put("presigned_query", "s3-doc", q)
    put("presigned_query", "token", q + "&X-Amz-Security-Token=FQoGZXIvYXdzEJr%2F%2F%2F%2F%2Fwo%3D&response-content-type=text%2Fplain")
    put("presigned_query", "sdk-order", "x-id=GetObject&X-Amz-Algorithm=AWS4-HMAC-SHA256&X-Amz-Content-Sha256=UNSIGNED-PAYLOAD"
        "&X-Amz-Credential=SWXCDEQAKYQJINQQAH6X%2F20261201%2Fus-east-1%2Fs3%2Faws4_request&X-Amz-Date=20261201T232500Z"
        "&X-Amz-Expires=604800&X-Amz-SignedHeaders=host&X-Amz-Signature=" + SIG + "&partNumber=1&uploadId=abc")
    put("presigned_query", "sigv2", "AWSAccessKeyId=AKIAIOSFODNN7EXAMPLE&Expires=1141889120&Signature=vjbyPxybdZaNmGa%2ByT272YEAiv4%3D")
    put("presigned_query", "sigv4a", q.replace("AWS4-HMAC-SHA256", "AWS4-ECDSA-P256-SHA256", 1))
    put("presigned_query", "plain", "list-type=2&prefix=a%2Fb+c&delimiter=%2F&uploads")

# ---- aws_chunked -------------------------------------------------------------------
SECRET = "wJalrXUtnFEMI/K7MDENG/bPxRfiCYEXAMPLEKEY"
DATE = "20130524T000000Z"
SCOPE = "20130524/us-east-1/s3/aws4_request"
SEED = "4f232c4386841ef735655705268965c44a0e4690baa4adea153f7db9fa80a0a9"
EMPTY = hashlib.sha256(b"").hexdigest()
ALGOS = ["crc32", "crc32c", "crc64nvme", "sha1", "sha256"]


def h(key, msg):
    return hmac.new(key, msg.encode(), hashlib.sha256).digest()


KEY = h(h(h(h(("AWS4" + SECRET).encode(), "20130524"), "us-east-1"), "s3"), "aws4_request")


def sign(sts):
    return hmac.new(KEY, sts.encode(), hashlib.sha256).hexdigest()


def checksum(algo, data):
    if algo == "crc32":
        raw = struct.pack(">I", zlib.crc32(data))
    elif algo == "sha1":
        raw = hashlib.sha1(data).digest()
    elif algo == "sha256":
        raw = hashlib.sha256(data).digest()
    else:
        return None
    return base64.b64encode(raw).decode()


def framed(data, chunk, signed, algo):
    out, prev = b"", SEED
    pieces = [data[i:i + chunk] for i in range(0, len(data), chunk)] + [b""]
    for p in pieces:
        if signed:
            sig = sign(f"AWS4-HMAC-SHA256-PAYLOAD\n{DATE}\n{SCOPE}\n{prev}\n{EMPTY}\n{hashlib.sha256(p).hexdigest()}")
            out += f"{len(p):x};chunk-signature={sig}\r\n".encode()
            prev = sig
        else:
            out += f"{len(p):X}\r\n".encode()
        out += p + (b"\r\n" if p else b"")
    if algo:
        line = f"x-amz-checksum-{algo}:{checksum(algo, data)}"
        out += (line + "\r\n").encode()
        if signed:
            th = hashlib.sha256((line + "\n").encode()).hexdigest()
            sig = sign(f"AWS4-HMAC-SHA256-TRAILER\n{DATE}\n{SCOPE}\n{prev}\n{th}")
            out += f"x-amz-trailer-signature:{sig}\r\n".encode()
    return out + b"\r\n"


def aws_chunked():
    # Raw mode: [default limits][raw][10 split bytes][signed][trailer][len lo][len hi][body].
    for signed in (True, False):
        for ai, algo in enumerate([None, "crc32", "sha1", "sha256"]):
            if not signed and algo is None:
                continue
            data = bytes((i * 7) % 251 for i in range(300))
            body = framed(data, 128, signed, algo)
            t = 0 if algo is None else ALGOS.index(algo) + 1
            head = bytes([1, 1]) + bytes(10) + bytes([1 if signed else 0, t]) + struct.pack("<H", len(data))
            put("aws_chunked", f"raw-{'signed' if signed else 'unsigned'}-{algo or 'none'}", head + body)
    # Structured mode: [limits][0][10 split bytes][signed][trailer][n][len, bytes]... [damage][args].
    for signed in (0, 1):
        for t in (0, 2, 3, 5):
            for damage in range(7):
                chunks = b"".join(bytes([n - 1]) + bytes([65 + n % 26]) * n for n in (20, 45, 64))
                args = bytes([1, 2, 3, 4, 5, 6, 7, 8, 9, 10])
                split = bytes([3, 0, 20, 0, 90, 1, 10, 0, 0, 0])
                put("aws_chunked", f"framed-s{signed}-t{t}-d{damage}",
                    bytes([1, 0]) + split + bytes([signed, t, 3]) + chunks + bytes([damage]) + args)

# ---- post_form ---------------------------------------------------------------------
def post_form():
    policy = {"expiration": "2027-01-01T00:00:00Z", "conditions": [
        {"bucket": "photos"}, ["starts-with", "$key", "app1/"], {"acl": "private"},
        ["content-length-range", 1, 1048576], ["starts-with", "$Content-Type", "image/"],
        {"x-amz-algorithm": "AWS4-HMAC-SHA256"},
        {"x-amz-credential": "AKIAIOSFODNN7EXAMPLE/20261201/us-east-1/s3/aws4_request"},
        {"x-amz-date": "20261201T000000Z"}, ["eq", "$success_action_status", "201"]]}
    pj = json.dumps(policy)
    p64 = base64.b64encode(pj.encode()).decode()
    fields = [("key", "app1/${filename}"), ("acl", "private"), ("Content-Type", "image/png"),
              ("success_action_status", "201"), ("x-amz-algorithm", "AWS4-HMAC-SHA256"),
              ("x-amz-credential", "AKIAIOSFODNN7EXAMPLE/20261201/us-east-1/s3/aws4_request"),
              ("x-amz-date", "20261201T000000Z"), ("policy", p64), ("x-amz-signature", SIG)]
    for b in ("----WebKitFormBoundary7MA4YWxkTrZu0gW", "xyz", "------------------------d74496d66958873e"):
        body = b""
        for k, v in fields:
            body += f"--{b}\r\nContent-Disposition: form-data; name=\"{k}\"\r\n\r\n{v}\r\n".encode()
        body += f"--{b}\r\nContent-Disposition: form-data; name=\"file\"; filename=\"cat.png\"\r\nContent-Type: image/png\r\n\r\n".encode()
        body += b"\x89PNG\r\n\x1a\nfile bytes\r\n" + f"\r\n--{b}--\r\n".encode()
        ct = f'multipart/form-data; boundary="{b}"' if b == "xyz" else f"multipart/form-data; boundary={b}"
        put("post_form", f"form-{len(b)}", ct.encode() + b"\n" + bytes([0, 40, 1, 0, 2, 0, 0, 0]) + body)
    put("post_form", "policy-full", "P18\n" + pj + "\n\n" + "\n".join(f"{k}={v}" for k, v in fields if k != "policy"))
    put("post_form", "policy-small", 'P5\n{"expiration":"2027-01-01T00:00:00.000Z","conditions":[["content-length-range","1","10"],{"key":"a"}]}\n\nkey=a\nx-ignore-me=1')
    put("post_form", "policy-list", 'P0\n{"expiration":"2026-12-31T23:59:59+01:00","conditions":[["starts-with","$content-type","image/"]]}\n\ncontent-type=image/png,text/html')

# ---- router ------------------------------------------------------------------------
def router():
    rows = [
        "GET\nlocalhost:8090\n/photos/app1/cat.jpg\n\n",
        "PUT\nphotos.s3.example.com\n/app1/a%20b+c.txt\n\n",
        "GET\n127.0.0.1\n/photos\nlist-type=2&prefix=app1%2F&delimiter=%2F\n",
        "GET\nphotos.example.com\n/\nprefix=app1/&list-type=2\n",
        "PUT\nlocalhost\n/photos/app1/copy\n\n/photos/app1/src%2Fkey?versionId=3",
        "PUT\nlocalhost\n/photos/app1/part\npartNumber=2&uploadId=abc\nphotos/app1/x",
        "POST\nlocalhost\n/photos/app1/big\nuploads\n",
        "POST\nlocalhost\n/photos\ndelete\n",
        "GET\nlocalhost\n/photos/app1/../secret\n\n",
        "GET\nlocalhost\n/photos/app1/%2E%2E/%2E%2E/other/k\n\n",
        "GET\nlocalhost\n/photos//app1/../x\n\n",
        "DELETE\nlocalhost\n/photos/app1/x\n\n",
        "GET\nlocalhost\n/photos\nacl\n",
        "PUT\nlocalhost\n/photos\nversioning\n",
        "HEAD\nPHOTOS.S3.EXAMPLE.COM.\n/app1/k\n\n",
        "GET\n[::1]:8090\n/\n\n",
        "GET\nlocalhost\n/photos/app1/k\nresponse-content-type=text%2Fplain&X-Amz-Expires=60\n",
        "OPTIONS\nlocalhost\n/photos/app1/k\n\n",
        "PUT\nlocalhost\n/photos/app1/k\nacl\n",
        "GET\nlocalhost\n/photos/app1/k\ntagging&versionId=1\n",
    ]
    for i, r in enumerate(rows):
        put("router", f"{i:02}", r)

# ---- config ------------------------------------------------------------------------
def config():
    put("config", "example", open(os.path.join(ROOT, "config.example.toml"), encoding="utf-8").read())
    cm = open(os.path.join(ROOT, "deploy", "configmap.yaml"), encoding="utf-8").read()
    m = re.search(r"stowage\.toml: \|\n((?:    .*\n|\n)+)", cm)
    if m:
        put("config", "deploy-configmap", "\n".join(l[4:] for l in m.group(1).splitlines()) + "\n")
    put("config", "readme-minimal", '''[s3_proxy]
listen = "0.0.0.0:8090"
host_suffixes = ["s3.example.com"]

[database]
path = "/var/lib/stowage/stowage.db"
secret_key_file = "/var/lib/stowage/stowage.key"

[[backends]]
id = "minio"
endpoint = "http://minio.storage.svc:9000"
region = "us-east-1"
access_key_id = "stowage-admin"
secret_access_key_env = "MINIO_SECRET"
''')
    put("config", "env-override", '''# env-override
[log]
format = "text"
[admin]
token_env = "ADMIN_TOKEN"
[[backends]]
id = "a"
endpoint = "https://s3.amazonaws.com"
access_key_id = "AK"
secret_access_key_env = "A_SECRET"
[[backends]]
id = "a"
endpoint = "http://[::1]:9000"
access_key_id = "AK"
secret_access_key_env = "lower_case_secret"
''')
    put("config", "bad", '[s3_proxy]\nlisen = "x"\nmax_clock_skew = "abc"\n')


auth_header(); presigned_query(); aws_chunked(); post_form(); router(); config()
print("seeds written under", CORPUS)
