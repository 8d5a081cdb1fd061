//! The processes under test: Garage, a pass-through nginx and `stowage serve`, each
//! started from a generated config in a temp dir and killed on drop; plus CPU time
//! and peak RSS read from /proc.

use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use super::sign::{Keys, REGION};

/// A port that was free a moment ago, for the processes that bind their own.
pub fn free_addr() -> SocketAddr {
    let l = std::net::TcpListener::bind("127.0.0.1:0").expect("bind probe");
    l.local_addr().expect("probe addr")
}

pub struct Proc {
    pub name: &'static str,
    child: Child,
    pub log: PathBuf,
}

impl Proc {
    pub fn pid(&self) -> u32 {
        self.child.id()
    }

    pub fn exited(&mut self) -> Option<String> {
        match self.child.try_wait() {
            Ok(Some(st)) => Some(format!(
                "{} exited ({st}):\n{}",
                self.name,
                std::fs::read_to_string(&self.log).unwrap_or_default()
            )),
            _ => None,
        }
    }

    /// The process and its children (nginx workers).
    pub fn pids(&self) -> Vec<u32> {
        let root = self.pid();
        let mut pids = vec![root];
        if let Ok(dir) = std::fs::read_dir("/proc") {
            for e in dir.flatten() {
                let Some(pid) = e.file_name().to_str().and_then(|s| s.parse::<u32>().ok()) else {
                    continue;
                };
                if stat_fields(pid)
                    .is_some_and(|f| f.get(1).map(String::as_str) == Some(&root.to_string()))
                {
                    pids.push(pid);
                }
            }
        }
        pids
    }
}

impl Drop for Proc {
    fn drop(&mut self) {
        let _ = Command::new("kill")
            .args(["-TERM", &self.child.id().to_string()])
            .status();
        let deadline = Instant::now() + Duration::from_secs(5);
        while Instant::now() < deadline {
            if let Ok(Some(_)) = self.child.try_wait() {
                return;
            }
            std::thread::sleep(Duration::from_millis(20));
        }
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// Fields of /proc/<pid>/stat after the command name: [state, ppid, ...].
fn stat_fields(pid: u32) -> Option<Vec<String>> {
    let s = std::fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
    let after = &s[s.rfind(')')? + 2..];
    Some(after.split_whitespace().map(str::to_owned).collect())
}

/// utime + stime of all threads, in clock ticks (USER_HZ, 100 on Linux x86-64).
pub fn cpu_ticks(pids: &[u32]) -> u64 {
    pids.iter()
        .filter_map(|p| stat_fields(*p))
        .map(|f| {
            // Fields 14 and 15 of stat; index 11 and 12 after the command name.
            f[11].parse::<u64>().unwrap_or(0) + f[12].parse::<u64>().unwrap_or(0)
        })
        .sum()
}

pub const TICK_SECS: f64 = 0.01;

/// Sum of VmHWM (peak resident set) in KiB.
pub fn peak_rss_kib(pids: &[u32]) -> u64 {
    pids.iter()
        .filter_map(|p| std::fs::read_to_string(format!("/proc/{p}/status")).ok())
        .filter_map(|s| {
            s.lines()
                .find_map(|l| l.strip_prefix("VmHWM:"))
                .and_then(|v| v.trim().trim_end_matches("kB").trim().parse::<u64>().ok())
        })
        .sum()
}

/// Reset VmHWM to the current RSS (clear_refs 5), so the next peak is per case.
pub fn reset_peak(pids: &[u32]) {
    for p in pids {
        let _ = std::fs::write(format!("/proc/{p}/clear_refs"), "5");
    }
}

fn spawn(name: &'static str, dir: &Path, cmd: &mut Command) -> Proc {
    let log = dir.join(format!("{name}.log"));
    let f = std::fs::File::create(&log).expect("log file");
    let child = cmd
        .stdin(Stdio::null())
        .stdout(f.try_clone().expect("log handle"))
        .stderr(f)
        .spawn()
        .unwrap_or_else(|e| panic!("cannot start {name}: {e}"));
    Proc { name, child, log }
}

/// Wait until `addr` accepts TCP connections.
pub fn wait_listening(p: &mut Proc, addr: SocketAddr) {
    let deadline = Instant::now() + Duration::from_secs(30);
    while std::net::TcpStream::connect(addr).is_err() {
        if let Some(e) = p.exited() {
            panic!("{e}");
        }
        assert!(
            Instant::now() < deadline,
            "{} never listened on {addr}",
            p.name
        );
        std::thread::sleep(Duration::from_millis(20));
    }
}

pub fn garage_binary() -> Option<PathBuf> {
    let on_path = std::env::var_os("PATH").and_then(|paths| {
        std::env::split_paths(&paths)
            .map(|d| d.join("garage"))
            .find(|p| p.is_file())
    });
    on_path.or_else(|| {
        let p = PathBuf::from(std::env::var_os("HOME")?).join(".cargo/bin/garage");
        p.is_file().then_some(p)
    })
}

/// A single-node Garage with LMDB, its default key and the bench bucket.
pub fn start_garage(bin: &Path, dir: &Path, bucket: &str) -> (Proc, SocketAddr, Keys) {
    std::fs::create_dir_all(dir).expect("garage dir");
    let s3 = free_addr();
    let rpc = free_addr();
    let keys = Keys {
        access: format!("GK{}", hex::encode(rand::random::<[u8; 12]>())),
        secret: hex::encode(rand::random::<[u8; 32]>()),
    };
    let cfg = dir.join("garage.toml");
    std::fs::write(
        &cfg,
        format!(
            "metadata_dir = \"{m}\"\ndata_dir = \"{d}\"\ndb_engine = \"lmdb\"\nreplication_factor = 1\n\
             rpc_bind_addr = \"{rpc}\"\nrpc_public_addr = \"{rpc}\"\nrpc_secret = \"{sec}\"\n\n\
             [s3_api]\ns3_region = \"{REGION}\"\napi_bind_addr = \"{s3}\"\n",
            m = dir.join("meta").display(),
            d = dir.join("data").display(),
            sec = hex::encode(rand::random::<[u8; 32]>()),
        ),
    )
    .expect("garage config");
    let mut p = spawn(
        "garage",
        dir,
        Command::new(bin)
            .arg("-c")
            .arg(&cfg)
            .args(["server", "--single-node", "--default-bucket"])
            .env("GARAGE_DEFAULT_ACCESS_KEY", &keys.access)
            .env("GARAGE_DEFAULT_SECRET_KEY", &keys.secret)
            .env("GARAGE_DEFAULT_BUCKET", bucket)
            .env("RUST_LOG", "garage=warn"),
    );
    wait_listening(&mut p, s3);
    (p, s3, keys)
}

/// nginx as a pass-through reverse proxy: keepalive upstream, HTTP/1.1, the client's
/// Host forwarded unchanged (the upstream checks the signature made for it), request
/// bodies streamed, 256 KiB response buffers, no temp files, no access log.
pub fn start_nginx(dir: &Path, upstream: SocketAddr) -> (Proc, SocketAddr) {
    let bin = nginx_binary();
    std::fs::create_dir_all(dir.join("tmp")).expect("nginx dir");
    let listen = free_addr();
    let conf = dir.join("nginx.conf");
    std::fs::write(
        &conf,
        format!(
            "daemon off;\nmaster_process on;\nuser root;\nworker_processes 2;\npid {d}/nginx.pid;\n\
             error_log {d}/error.log warn;\nevents {{ worker_connections 4096; }}\n\
             http {{\n  access_log off;\n  client_body_temp_path {d}/tmp/body;\n  proxy_temp_path {d}/tmp/proxy;\n\
               client_max_body_size 0;\n  keepalive_requests 10000000;\n  keepalive_timeout 120s;\n\
               upstream up {{ server {upstream}; keepalive 128; keepalive_requests 10000000; }}\n\
               server {{\n    listen {listen} reuseport;\n    location / {{\n\
                 proxy_pass http://up;\n      proxy_http_version 1.1;\n\
                 proxy_set_header Connection \"\";\n      proxy_set_header Host $http_host;\n\
                 proxy_request_buffering off;\n      client_body_buffer_size 256k;\n\
                 proxy_buffering on;\n      proxy_buffer_size 256k;\n      proxy_buffers 8 256k;\n\
                 proxy_busy_buffers_size 512k;\n      proxy_max_temp_file_size 0;\n\
                 proxy_read_timeout 300s;\n      proxy_send_timeout 300s;\n    }}\n  }}\n}}\n",
            d = dir.display(),
        ),
    )
    .expect("nginx conf");
    let mut p = spawn(
        "nginx",
        dir,
        Command::new(bin)
            .arg("-e")
            .arg(dir.join("error.log"))
            .arg("-p")
            .arg(dir)
            .arg("-c")
            .arg(&conf),
    );
    wait_listening(&mut p, listen);
    (p, listen)
}

/// nginx from PATH or /usr/sbin; installs Debian's nginx-light when neither has it.
fn nginx_binary() -> PathBuf {
    let find = || {
        ["/usr/sbin/nginx", "/usr/bin/nginx"]
            .iter()
            .map(PathBuf::from)
            .find(|p| p.is_file())
    };
    if let Some(p) = find() {
        return p;
    }
    eprintln!("loadbench: nginx missing, running apt-get install -y nginx-light");
    let root = Command::new("id")
        .arg("-u")
        .output()
        .is_ok_and(|o| o.stdout.starts_with(b"0\n"));
    let mut cmd = if root {
        Command::new("apt-get")
    } else {
        let mut c = Command::new("sudo");
        c.arg("apt-get");
        c
    };
    let ok = cmd
        .args(["install", "-y", "--no-install-recommends", "nginx-light"])
        .env("DEBIAN_FRONTEND", "noninteractive")
        .status()
        .is_ok_and(|s| s.success());
    assert!(ok, "apt-get install nginx-light failed");
    find().expect("nginx installed but not found in /usr/sbin")
}

/// `stowage serve` as its own process, with one backend and one virtual credential
/// scoped read-write to `bucket`. Unauthenticated per-IP limiting is off so the
/// reject cases measure the reject path rather than the limiter's 503.
pub fn start_stowage(
    bin: &Path,
    dir: &Path,
    upstream: SocketAddr,
    admin: &Keys,
    bucket: &str,
) -> (Proc, SocketAddr, Keys) {
    std::fs::create_dir_all(dir).expect("stowage dir");
    let s3 = free_addr();
    let admin_addr = free_addr();
    let secret = dir.join("backend.secret");
    std::fs::write(&secret, &admin.secret).expect("secret");
    std::fs::set_permissions(&secret, std::os::unix::fs::PermissionsExt::from_mode(0o600))
        .expect("chmod");
    let cfg = dir.join("stowage.toml");
    std::fs::write(
        &cfg,
        format!(
            "[s3_proxy]\nlisten = \"{s3}\"\nunauthenticated_per_ip_rps = 0\n\n\
             [admin]\nlisten = \"{admin_addr}\"\n\n[log]\nlevel = \"warn\"\n\n\
             [server]\ndrain_delay = \"0s\"\nshutdown_timeout = \"5s\"\n\n\
             [[backends]]\nid = \"bench\"\nendpoint = \"http://{upstream}\"\nregion = \"{REGION}\"\n\
             access_key_id = \"{}\"\nsecret_access_key_file = \"backend.secret\"\n",
            admin.access
        ),
    )
    .expect("stowage config");
    let root = hex::encode(rand::random::<[u8; 32]>());
    let out = Command::new(bin)
        .args([
            "credentials",
            "create",
            "--backend",
            "bench",
            "--scope",
            bucket,
            "--config",
        ])
        .arg(&cfg)
        .env("STOWAGE_SECRET_KEY", &root)
        .output()
        .expect("stowage credentials create");
    assert!(
        out.status.success(),
        "credentials create: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    let text = String::from_utf8_lossy(&out.stdout);
    let field = |name: &str| {
        text.lines()
            .find_map(|l| l.strip_prefix(name))
            .map(|v| v.trim().to_owned())
            .expect("credentials create prints the key pair")
    };
    let keys = Keys {
        access: field("access_key_id:"),
        secret: field("secret_access_key:"),
    };
    let mut p = spawn(
        "stowage",
        dir,
        Command::new(bin)
            .args(["serve", "--config"])
            .arg(&cfg)
            .env("STOWAGE_SECRET_KEY", &root),
    );
    wait_listening(&mut p, s3);
    (p, s3, keys)
}
