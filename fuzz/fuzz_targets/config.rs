//! The config parser: TOML text → environment overrides → typed, validated config, on
//! arbitrary text. It answers a config or an error naming the problem, never panics,
//! and a secret read from the environment never appears in an error or in `Debug`.
//!
//! The injected environment gives every `*_env` variable a recognisable secret and
//! sets no `STOWAGE_…` overrides, except `STOWAGE_LOG__FORMAT` when the text asks for
//! it with a `# env-override` comment, so the override path runs too.

#![no_main]

use libfuzzer_sys::fuzz_target;
use stowage::config::from_toml_str;

const SECRET: &str = "fuzz-env-secret-Q7xv2LmPz";

fuzz_target!(|data: &[u8]| {
    let Ok(text) = std::str::from_utf8(data) else {
        return;
    };
    let override_format = text.contains("# env-override");
    let env = |name: &str| -> Option<String> {
        if name.starts_with("STOWAGE_") {
            return (override_format && name == "STOWAGE_LOG__FORMAT").then(|| "json".to_owned());
        }
        Some(format!("  {SECRET}\n"))
    };
    // The text may spell the secret itself (the fuzzer learns it); then an error that
    // quotes the text is no leak.
    // An access key id may come from the environment too (`access_key_id_env`); it is
    // no secret and may be shown, so with one the leak checks are off.
    let in_text = text.contains(SECRET) || text.contains("access_key_id_env");
    match from_toml_str(text, &env) {
        Ok(config) => {
            assert!(in_text || !format!("{config:?}").contains(SECRET));
            let _ = config.validate_for_serve();
            for b in &config.backends {
                assert!(config.backend(&b.id).is_some());
            }
        }
        Err(e) => {
            let shown = e.to_string();
            assert!(!shown.is_empty());
            if !in_text {
                assert!(
                    !shown.contains(SECRET),
                    "a secret in a config error: {shown}"
                );
                assert!(!format!("{e:?}").contains(SECRET));
            }
        }
    }
});
