//! A mutation fuzzer for what rrun reads from disk: config.json (decode + plan, which also
//! compiles seccomp) and the state files (state.json as `Saved` and `Brief`, cgroup.owned).
//! It runs in `make test` for a fixed budget (RRUN_FUZZ_SECS, default 4 s per target) from a
//! fixed seed (RRUN_FUZZ_SEED): 0 panics. An input that panics is written to
//! target/fuzz-crash-<target>.json and named in the failure.
//!
//! Mutations work on bytes (flips, cuts, repeats) and on the JSON tree (a node replaced by a
//! value of another type, a huge or negative number, a long or odd string, an array grown),
//! so that most inputs still parse and reach the checks behind the decoder.

use serde_json::Value;
use std::path::Path;
use std::time::{Duration, Instant};

struct Rng(u64);

impl Rng {
    fn next(&mut self) -> u64 {
        // xorshift64*
        self.0 ^= self.0 >> 12;
        self.0 ^= self.0 << 25;
        self.0 ^= self.0 >> 27;
        self.0.wrapping_mul(0x2545_f491_4f6c_dd1d)
    }
    fn below(&mut self, n: usize) -> usize {
        if n == 0 {
            0
        } else {
            (self.next() % n as u64) as usize
        }
    }
}

const ODD_VALUES: &[&str] = &[
    "null",
    "true",
    "0",
    "-1",
    "4294967296",
    "18446744073709551615",
    "-9223372036854775809",
    "1e308",
    "0.5",
    "\"\"",
    "\"/\"",
    "\"../../..\"",
    "\"\\u0000\"",
    "\"é🚀\"",
    "[]",
    "{}",
    "[null]",
    "\"ALL\"",
    "\"CAP_NOPE\"",
    "\"SCMP_ACT_NOTIFY\"",
];

fn mutate_tree(v: &mut Value, rng: &mut Rng, depth: usize) {
    let pick_here = depth > 0 && rng.below(4) == 0;
    match v {
        Value::Object(m) if !m.is_empty() && !pick_here => {
            let k = m.keys().nth(rng.below(m.len())).cloned().unwrap();
            if rng.below(10) == 0 {
                m.remove(&k);
            } else {
                mutate_tree(m.get_mut(&k).unwrap(), rng, depth + 1);
            }
        }
        Value::Array(a) if !a.is_empty() && !pick_here => {
            let i = rng.below(a.len());
            match rng.below(8) {
                0 => {
                    let c = a[i].clone();
                    for _ in 0..rng.below(50) {
                        a.push(c.clone());
                    }
                }
                1 => {
                    a.remove(i);
                }
                _ => mutate_tree(&mut a[i], rng, depth + 1),
            }
        }
        _ => {
            *v = match rng.below(4) {
                0 => Value::String("x".repeat(rng.below(70_000))),
                1 => match v {
                    Value::String(s) => Value::String(format!("{s}{s}/..")),
                    Value::Number(_) => Value::from(rng.next() as i64),
                    _ => Value::Null,
                },
                _ => serde_json::from_str(ODD_VALUES[rng.below(ODD_VALUES.len())]).unwrap(),
            };
        }
    }
}

fn mutate_bytes(data: &mut Vec<u8>, rng: &mut Rng) {
    if data.is_empty() {
        data.push(b'{');
        return;
    }
    let i = rng.below(data.len());
    match rng.below(5) {
        0 => data[i] ^= 1 << rng.below(8),
        1 => data.truncate(i),
        2 => {
            let j = (i + rng.below(64)).min(data.len());
            data.drain(i..j);
        }
        3 => {
            let j = (i + rng.below(64)).min(data.len());
            let piece = data[i..j].to_vec();
            data.splice(i..i, piece);
        }
        _ => data.insert(i, b"{}[]\",:0-e\\"[rng.below(11)]),
    }
}

/// Run `target` on mutants of `seeds` for the budget; panics name the saved input.
fn fuzz(name: &str, seeds: &[Vec<u8>], target: impl Fn(&[u8])) {
    let secs: f64 = std::env::var("RRUN_FUZZ_SECS")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(4.0);
    let seed: u64 = std::env::var("RRUN_FUZZ_SEED")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(0x5eed_1234_abcd_0001);
    let mut rng = Rng(seed | 1);
    let deadline = Instant::now() + Duration::from_secs_f64(secs);
    let mut runs = 0u64;
    let mut parsed = 0u64;
    while Instant::now() < deadline {
        let base = &seeds[rng.below(seeds.len())];
        let input = match (serde_json::from_slice::<Value>(base), rng.below(3)) {
            (Ok(mut v), 0 | 1) => {
                for _ in 0..=rng.below(4) {
                    mutate_tree(&mut v, &mut rng, 0);
                }
                parsed += 1;
                serde_json::to_vec(&v).unwrap()
            }
            _ => {
                let mut d = base.clone();
                for _ in 0..=rng.below(8) {
                    mutate_bytes(&mut d, &mut rng);
                }
                d
            }
        };
        let r = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| target(&input)));
        if r.is_err() {
            let out = Path::new(env!("CARGO_MANIFEST_DIR"))
                .join("target")
                .join(format!("fuzz-crash-{name}.json"));
            let _ = std::fs::write(&out, &input);
            panic!("fuzz {name}: panic on the input saved in {}", out.display());
        }
        runs += 1;
    }
    eprintln!(
        "fuzz {name}: {runs} inputs ({parsed} tree mutants) in {secs} s, seed {seed}: no panic"
    );
    assert!(runs > 0);
}

fn bundle_dir() -> std::path::PathBuf {
    let d = std::env::temp_dir().join(format!("rrun-fuzz-{}", std::process::id()));
    std::fs::create_dir_all(d.join("rootfs")).unwrap();
    d
}

#[test]
fn fuzz_config() {
    let bundle = bundle_dir();
    let mut spec: Value =
        serde_json::from_str(include_str!("../bundles/busybox/config.json")).unwrap();
    spec["root"]["path"] = Value::from("rootfs");
    let plain = serde_json::to_vec(&spec).unwrap();
    spec["linux"]["seccomp"] = serde_json::from_str(include_str!(
        "../tests/fixtures/seccomp/containers-common.json"
    ))
    .unwrap();
    let with_seccomp = serde_json::to_vec(&spec).unwrap();
    fuzz("config", &[plain, with_seccomp], |data| {
        if let Ok(s) = crate::spec::decode::<oci_spec::runtime::Spec>("config.json", data) {
            let _ = crate::spec::plan(&bundle, s);
        }
    });
    let _ = std::fs::remove_dir_all(&bundle);
}

#[test]
fn fuzz_state() {
    let saved = br#"{"ociVersion":"1.2.0","id":"x","creating":false,"pid":12,"startTime":34,"creatorPid":5,"creatorStartTime":6,"bundle":"/b","rootfs":"/b/rootfs","created":"2026-12-07T00:00:00Z","owner":"root","annotations":{"a":"b"},"cgroup":{"mode":"hybrid","hierarchies":[{"name":"freezer","controllers":["freezer"],"options":"freezer","mount":"/sys/fs/cgroup/freezer","dir":"/sys/fs/cgroup/freezer/t/x","unified":false},{"name":"unified","controllers":[],"options":"","mount":"/sys/fs/cgroup/unified","dir":"/sys/fs/cgroup/unified/t/x","unified":true}],"created":["/sys/fs/cgroup/freezer/t/x"]},"hooks":{"poststop":[{"path":"/bin/true"}]}}"#.to_vec();
    let owned = b"leaf\t/sys/fs/cgroup/pids/t/x\0parent\t/sys/fs/cgroup/pids/t\0existed\t/sys/fs/cgroup/pids/t/x\0".to_vec();
    fuzz("state", &[saved, owned], |data| {
        if let Ok(s) = serde_json::from_slice::<crate::state::Saved>(data) {
            let f = crate::state::Facts {
                creating: s.creating,
                ..Default::default()
            };
            let _ = crate::state::derive_status(&f);
        }
        if let Ok(b) = serde_json::from_slice::<crate::state::Brief>(data) {
            let _ = serde_json::to_string(&b.oci_state(crate::state::Status::Stopped));
        }
        let _ = crate::cgroups::owned::parse(data);
    });
}
