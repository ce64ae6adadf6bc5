//! The deployment files (Dockerfile, .dockerignore, deploy/compose, deploy/systemd) checked as
//! far as CI can without a container engine or a running systemd:
//!
//! - the systemd unit passes `systemd-analyze verify` with no warning at all (its ExecStart
//!   pointed at the binary built for this test, in a copy of the unit) and keeps its hardening;
//! - the compose file, parsed by a real YAML parser (python3-yaml), has the expected structure
//!   and no secret literal;
//! - the Dockerfile and .dockerignore say what the image promises (multi-stage, non-root, the
//!   health check, the /data volume) and keep secrets and build output out of the context;
//! - the runtime stage is stood in for by the built binary run under bubblewrap as uid/gid
//!   65534 with the whole filesystem read-only except its data folder, as the image runs it.
//!
//! A missing tool (systemd-analyze, python3-yaml, bwrap) skips its test with a printed reason;
//! `.ci/run` installs them.

use std::{
    collections::{BTreeMap, BTreeSet},
    fs,
    os::unix::fs::{MetadataExt, PermissionsExt},
    path::{Path, PathBuf},
    process::{Child, Command, ExitStatus, Stdio},
    time::{Duration, Instant},
};

use serde_json::Value;

fn repo_root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .ancestors()
        .nth(2)
        .expect("crates/dhanhook sits two levels below the repository root")
        .to_path_buf()
}

fn read(rel: &str) -> String {
    let path = repo_root().join(rel);
    fs::read_to_string(&path).unwrap_or_else(|e| panic!("{}: {e}", path.display()))
}

fn skip(test: &str, reason: &str) {
    eprintln!("skipping {test}: {reason}");
}

/// A program from PATH or one of the usual system folders.
fn find_program(name: &str) -> Option<PathBuf> {
    let path = std::env::var_os("PATH").unwrap_or_default();
    std::env::split_paths(&path)
        .chain(["/usr/bin", "/bin", "/usr/sbin", "/sbin"].map(PathBuf::from))
        .map(|dir| dir.join(name))
        .find(|p| {
            p.metadata()
                .is_ok_and(|m| m.is_file() && m.permissions().mode() & 0o111 != 0)
        })
}

// ---------------------------------------------------------------------------------------------
// systemd unit

/// `key -> values` of one section of a unit file (a key may repeat).
fn unit_section(text: &str, section: &str) -> BTreeMap<String, Vec<String>> {
    let mut current = String::new();
    let mut out: BTreeMap<String, Vec<String>> = BTreeMap::new();
    for line in text.lines().map(str::trim) {
        if line.is_empty() || line.starts_with('#') || line.starts_with(';') {
            continue;
        }
        if line.starts_with('[') {
            current = line.trim_matches(['[', ']']).to_owned();
        } else if current == section
            && let Some((k, v)) = line.split_once('=')
        {
            out.entry(k.trim().to_owned())
                .or_default()
                .push(v.trim().to_owned());
        }
    }
    out
}

#[test]
fn systemd_unit_keeps_its_hardening_and_timeouts() {
    let unit = read("deploy/systemd/dhanhook.service");
    let service = unit_section(&unit, "Service");
    let one = |k: &str| -> &str {
        match service.get(k).map(Vec::as_slice) {
            Some([v]) => v,
            other => panic!("[Service] {k}: expected one value, found {other:?}"),
        }
    };
    for (k, v) in [
        ("ExecStart", "/usr/local/bin/dhanhook serve"),
        ("EnvironmentFile", "/etc/dhanhook/dhanhook.env"),
        ("DynamicUser", "yes"),
        ("StateDirectory", "dhanhook"),
        ("ProtectSystem", "strict"),
        ("ProtectHome", "yes"),
        ("PrivateTmp", "yes"),
        ("NoNewPrivileges", "yes"),
        ("Restart", "on-failure"),
        ("RestartSec", "5"),
        ("KillSignal", "SIGTERM"),
        ("CapabilityBoundingSet", ""),
        ("RestrictAddressFamilies", "AF_INET AF_INET6 AF_UNIX"),
        ("LockPersonality", "yes"),
        ("MemoryDenyWriteExecute", "yes"),
    ] {
        assert_eq!(one(k), v, "[Service] {k}");
    }
    assert!(
        service["Environment"].contains(&"DATA_DIR=%S/dhanhook".to_owned()),
        "DATA_DIR points into the state directory: {:?}",
        service["Environment"]
    );
    assert!(
        service["SystemCallFilter"].contains(&"@system-service".to_owned()),
        "{:?}",
        service["SystemCallFilter"]
    );
    // Above the service's own SHUTDOWN_TIMEOUT (8 s), so it always gets to close the journal.
    let stop: u64 = one("TimeoutStopSec")
        .parse()
        .expect("TimeoutStopSec in seconds");
    assert!(
        stop > 8,
        "TimeoutStopSec={stop} must exceed SHUTDOWN_TIMEOUT (8)"
    );

    let unit_part = unit_section(&unit, "Unit");
    assert_eq!(unit_part["After"], ["network-online.target"]);
    assert_eq!(unit_part["Wants"], ["network-online.target"]);
    assert_eq!(
        unit_section(&unit, "Install")["WantedBy"],
        ["multi-user.target"]
    );
}

#[test]
fn systemd_analyze_verify_accepts_the_unit() {
    const TEST: &str = "systemd_analyze_verify_accepts_the_unit";
    let Some(analyze) = find_program("systemd-analyze") else {
        return skip(
            TEST,
            "systemd-analyze is not installed (Debian package: systemd)",
        );
    };
    // `verify` checks that ExecStart's program exists and is executable: the copy points at the
    // binary cargo built for this test instead of /usr/local/bin/dhanhook. Nothing else changes.
    let unit = read("deploy/systemd/dhanhook.service");
    let original = "ExecStart=/usr/local/bin/dhanhook serve";
    assert_eq!(unit.matches(original).count(), 1, "one ExecStart line");
    let copy = unit.replace(
        original,
        &format!("ExecStart={} serve", env!("CARGO_BIN_EXE_dhanhook")),
    );
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("dhanhook.service");
    fs::write(&path, copy).unwrap();

    let out = Command::new(&analyze)
        .arg("verify")
        .arg(&path)
        .output()
        .expect("run systemd-analyze");
    let stdout = String::from_utf8_lossy(&out.stdout);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        out.status.success(),
        "systemd-analyze verify failed ({}):\n{stdout}{stderr}",
        out.status
    );
    // Unknown keys and unparsable values are only warnings (exit 0): any output is a failure.
    assert!(
        stdout.trim().is_empty() && stderr.trim().is_empty(),
        "systemd-analyze verify complained:\n{stdout}{stderr}"
    );
}

// ---------------------------------------------------------------------------------------------
// docker compose

/// The YAML file as JSON, parsed by python3-yaml; `None` when no python3 has it.
fn yaml_to_json(path: &Path) -> Option<Value> {
    const SCRIPT: &str =
        "import json, sys, yaml; json.dump(yaml.safe_load(open(sys.argv[1])), sys.stdout)";
    for python in ["python3", "/usr/bin/python3"] {
        let Ok(out) = Command::new(python).args(["-c", SCRIPT]).arg(path).output() else {
            continue;
        };
        if out.status.success() {
            return Some(serde_json::from_slice(&out.stdout).expect("python printed JSON"));
        }
        let stderr = String::from_utf8_lossy(&out.stderr);
        assert!(
            stderr.contains("No module named 'yaml'"),
            "{python} could not parse {}:\n{stderr}",
            path.display()
        );
    }
    None
}

fn strings(v: &Value) -> Vec<&str> {
    v.as_array()
        .unwrap_or_else(|| panic!("expected a list, got {v}"))
        .iter()
        .map(|s| {
            s.as_str()
                .unwrap_or_else(|| panic!("expected a string, got {s}"))
        })
        .collect()
}

/// Every `key: value` under the compose file, with the key path, for the secret scan.
fn walk<'a>(v: &'a Value, key: &str, out: &mut Vec<(String, &'a str)>) {
    match v {
        Value::Object(map) => {
            for (k, v) in map {
                walk(v, k, out);
            }
        }
        Value::Array(items) => items.iter().for_each(|v| walk(v, key, out)),
        Value::String(s) => out.push((key.to_owned(), s)),
        _ => {}
    }
}

/// The seconds of a compose duration such as `15s`, `1m30s`.
fn compose_seconds(d: &str) -> u64 {
    let mut total = 0;
    let mut number = String::new();
    for c in d.chars() {
        if c.is_ascii_digit() {
            number.push(c);
        } else {
            let n: u64 = number.parse().unwrap_or_else(|_| panic!("duration {d}"));
            number.clear();
            total += n * match c {
                'h' => 3600,
                'm' => 60,
                's' => 1,
                _ => panic!("duration {d}: unit {c}"),
            };
        }
    }
    assert!(number.is_empty(), "duration {d} needs a unit");
    total
}

#[test]
fn compose_file_has_the_three_services_wired_together() {
    const TEST: &str = "compose_file_has_the_three_services_wired_together";
    let compose_dir = repo_root().join("deploy/compose");
    let Some(doc) = yaml_to_json(&compose_dir.join("docker-compose.yml")) else {
        return skip(
            TEST,
            "no python3 with the yaml module (Debian: python3-yaml)",
        );
    };
    let services = doc["services"].as_object().expect("services");
    let names: BTreeSet<&str> = services.keys().map(String::as_str).collect();
    assert_eq!(names, BTreeSet::from(["caddy", "dhanhook", "postgres"]));
    let named_volumes = doc["volumes"].as_object().expect("top-level volumes");
    // A named volume mounted at `target` by `service`.
    let volume_at = |service: &Value, target: &str| -> String {
        let mount = strings(&service["volumes"])
            .into_iter()
            .find(|m| m.split(':').nth(1) == Some(target))
            .unwrap_or_else(|| panic!("nothing mounted at {target}: {}", service["volumes"]));
        let source = mount.split(':').next().unwrap().to_owned();
        assert!(
            named_volumes.contains_key(&source),
            "{mount}: {source} is not a named volume"
        );
        source
    };

    // dhanhook: built from the repository's Dockerfile, configured by .env plus the database.
    let app = &doc["services"]["dhanhook"];
    let context = compose_dir.join(app["build"]["context"].as_str().expect("build.context"));
    let dockerfile = app["build"]["dockerfile"].as_str().unwrap_or("Dockerfile");
    assert_eq!(
        context.join(dockerfile).canonicalize().unwrap(),
        repo_root().join("Dockerfile").canonicalize().unwrap()
    );
    assert_eq!(app["env_file"], ".env");
    let url = app["environment"]["DATABASE_URL"]
        .as_str()
        .expect("DATABASE_URL");
    assert!(
        url.starts_with("postgres://dhanhook:${POSTGRES_PASSWORD")
            && url.ends_with("}@postgres:5432/dhanhook"),
        "{url}"
    );
    assert_eq!(app["environment"]["DATA_DIR"], "/data");
    assert_eq!(app["restart"], "unless-stopped");
    assert_eq!(
        app["depends_on"]["postgres"]["condition"],
        "service_healthy"
    );
    let health = strings(&app["healthcheck"]["test"]);
    assert!(
        matches!(health.as_slice(), ["CMD", bin, "health"] if bin.ends_with("/dhanhook")),
        "dhanhook's healthcheck runs `dhanhook health`: {health:?}"
    );
    volume_at(app, "/data");
    let grace = compose_seconds(
        app["stop_grace_period"]
            .as_str()
            .expect("stop_grace_period"),
    );
    assert!(
        grace > 8,
        "stop_grace_period {grace}s must exceed SHUTDOWN_TIMEOUT (8 s)"
    );
    assert!(
        app.get("ports").is_none(),
        "dhanhook is reached through Caddy only"
    );

    // postgres: 16, healthy when pg_isready says so, data in a named volume.
    let db = &doc["services"]["postgres"];
    assert!(db["image"].as_str().unwrap().starts_with("postgres:16"));
    assert!(
        strings(&db["healthcheck"]["test"]).contains(&"pg_isready"),
        "{}",
        db["healthcheck"]
    );
    volume_at(db, "/var/lib/postgresql/data");
    assert_eq!(db["environment"]["POSTGRES_USER"], "dhanhook");
    assert_eq!(db["environment"]["POSTGRES_DB"], "dhanhook");

    // caddy: ports 80 and 443, this folder's Caddyfile, certificates kept in a volume.
    let caddy = &doc["services"]["caddy"];
    assert!(caddy["image"].as_str().unwrap().starts_with("caddy:2"));
    let published: BTreeSet<&str> = strings(&caddy["ports"])
        .into_iter()
        .map(|p| p.split('/').next().unwrap())
        .collect();
    for port in ["80:80", "443:443"] {
        assert!(
            published.contains(port),
            "caddy publishes {port}: {published:?}"
        );
    }
    assert!(
        strings(&caddy["volumes"]).contains(&"./Caddyfile:/etc/caddy/Caddyfile:ro"),
        "{}",
        caddy["volumes"]
    );
    volume_at(caddy, "/data");
    let caddyfile = read("deploy/compose/Caddyfile");
    assert!(caddyfile.contains("{$DOMAIN} {"), "{caddyfile}");
    assert!(
        caddyfile.contains("reverse_proxy dhanhook:8080"),
        "{caddyfile}"
    );

    // No secret in the file: every password, secret or token is a ${...} reference, and so is
    // the password inside the database URL.
    let mut values = Vec::new();
    walk(&doc, "", &mut values);
    for (key, value) in &values {
        let upper = key.to_uppercase();
        if ["PASSWORD", "SECRET", "TOKEN", "KEY"]
            .iter()
            .any(|w| upper.contains(w))
        {
            assert!(
                value.starts_with("${") && value.ends_with('}'),
                "{key} is a literal in docker-compose.yml"
            );
        }
        if let Some((_, rest)) = value.split_once("://")
            && let Some((credentials, _)) = rest.split_once('@')
        {
            let password = credentials.split_once(':').map_or("", |(_, p)| p);
            assert!(
                password.starts_with("${") && password.ends_with('}'),
                "{key}: a URL with a literal password"
            );
        }
    }

    // Every variable the compose file interpolates is in its .env.example, with a placeholder.
    let example = read("deploy/compose/.env.example");
    let defined: BTreeMap<&str, &str> = example
        .lines()
        .filter(|l| !l.trim_start().starts_with('#'))
        .filter_map(|l| l.split_once('='))
        .collect();
    let text = read("deploy/compose/docker-compose.yml");
    for reference in text.split("${").skip(1) {
        let name = reference
            .split(|c: char| !(c.is_ascii_alphanumeric() || c == '_'))
            .next()
            .unwrap();
        assert!(defined.contains_key(name), ".env.example lacks {name}");
    }
    assert_eq!(defined["POSTGRES_PASSWORD"], "change-me");
    assert!(defined["DOMAIN"].ends_with("example.com"));
    assert!(
        example.contains("../../.env.example"),
        "points at dhanhook's own .env.example"
    );
}

// ---------------------------------------------------------------------------------------------
// Dockerfile and .dockerignore

/// The Dockerfile's instructions, continuation lines joined and comments dropped.
fn dockerfile_instructions(text: &str) -> Vec<(String, String)> {
    let mut out = Vec::new();
    let mut pending = String::new();
    for line in text.lines() {
        let trimmed = line.trim();
        if trimmed.starts_with('#') || (trimmed.is_empty() && pending.is_empty()) {
            continue;
        }
        match trimmed.strip_suffix('\\') {
            Some(part) => {
                pending.push_str(part);
                pending.push(' ');
            }
            None => {
                pending.push_str(trimmed);
                let (op, args) = pending.split_once(' ').unwrap_or((&pending, ""));
                out.push((op.to_uppercase(), args.trim().to_owned()));
                pending.clear();
            }
        }
    }
    assert!(
        pending.is_empty(),
        "the Dockerfile ends inside a continuation"
    );
    out
}

fn json_array(s: &str) -> Vec<String> {
    serde_json::from_str(s).unwrap_or_else(|e| panic!("not an exec-form JSON array: {s}: {e}"))
}

#[test]
fn dockerfile_is_multi_stage_non_root_with_health_check_and_volume() {
    let instructions = dockerfile_instructions(&read("Dockerfile"));
    let all = |op: &str| -> Vec<&str> {
        instructions
            .iter()
            .filter(|(o, _)| o == op)
            .map(|(_, a)| a.as_str())
            .collect()
    };
    let last = |op: &str| -> &str { all(op).last().copied().unwrap_or_else(|| panic!("no {op}")) };

    // Multi-stage: a Rust build stage at least as new as the workspace's rust-version, then a
    // runtime stage without the toolchain.
    let froms = all("FROM");
    assert!(froms.len() >= 2, "multi-stage: {froms:?}");
    let build_image = froms[0].split_whitespace().next().unwrap();
    let tag = build_image
        .strip_prefix("rust:")
        .unwrap_or_else(|| panic!("build stage on rust: {build_image}"));
    let version = |v: &str| -> (u32, u32) {
        let mut parts = v.split('.').map(|p| p.parse::<u32>().unwrap());
        (parts.next().unwrap(), parts.next().unwrap())
    };
    let workspace = read("Cargo.toml");
    let rust_version = workspace
        .lines()
        .find_map(|l| l.strip_prefix("rust-version = "))
        .expect("workspace rust-version")
        .trim_matches('"');
    assert!(
        version(tag.split('-').next().unwrap()) >= version(rust_version),
        "{build_image} is older than rust-version {rust_version}"
    );
    let runtime = last("FROM");
    assert!(
        runtime.starts_with("gcr.io/distroless/cc-debian12")
            || runtime.starts_with("debian:bookworm-slim"),
        "runtime stage: {runtime}"
    );
    assert!(
        all("RUN")
            .iter()
            .any(|r| r.contains("cargo build --release --locked -p dhanhook")),
        "the binary is built with --locked"
    );
    assert!(
        all("COPY")
            .iter()
            .any(|c| c.starts_with("--from=build") && c.ends_with("/usr/local/bin/dhanhook")),
        "the binary lands in /usr/local/bin: {:?}",
        all("COPY")
    );
    assert!(
        all("COPY")
            .iter()
            .any(|c| c.contains("--chown=65532:65532") && c.ends_with(" /data")),
        "/data is owned by the runtime user"
    );

    let user = last("USER");
    let name = user.split(':').next().unwrap();
    assert!(
        !["", "root", "0"].contains(&name),
        "the image runs as a non-root user: USER {user}"
    );
    let health = last("HEALTHCHECK");
    let (_, command) = health
        .split_once("CMD ")
        .unwrap_or_else(|| panic!("HEALTHCHECK without CMD: {health}"));
    assert_eq!(
        json_array(command),
        ["/usr/local/bin/dhanhook", "health"],
        "exec form, no shell in the image"
    );
    assert_eq!(json_array(last("ENTRYPOINT")), ["/usr/local/bin/dhanhook"]);
    assert_eq!(json_array(last("CMD")), ["serve"]);
    assert!(all("EXPOSE").contains(&"8080"), "EXPOSE 8080");
    assert!(all("VOLUME").contains(&"/data"), "VOLUME /data");
    let env = all("ENV").join(" ");
    for setting in [
        "DATA_DIR=/data",
        "HOST=0.0.0.0",
        "PORT=8080",
        "LOG_FORMAT=json",
    ] {
        assert!(
            env.split_whitespace().any(|w| w == setting),
            "ENV {setting}: {env}"
        );
    }
}

#[test]
fn dockerignore_keeps_secrets_and_build_output_out_but_not_the_sources() {
    let text = read(".dockerignore");
    let patterns: BTreeSet<&str> = text
        .lines()
        .map(str::trim)
        .filter(|l| !l.is_empty() && !l.starts_with('#'))
        .map(|l| l.trim_start_matches('/').trim_end_matches('/'))
        .collect();
    for needed in ["target", ".env", ".env.*", "data", ".git"] {
        assert!(patterns.contains(needed), ".dockerignore lacks {needed}");
    }
    assert!(
        !patterns.iter().any(|p| p.starts_with('!')),
        "no re-inclusion: {patterns:?}"
    );
    // What the Dockerfile copies, and the data compiled in from crates/dhanhook/data, stay in:
    // "data" matches the root folder only, but "**/data" or a crates pattern would drop them.
    for kept in [
        "Cargo.toml",
        "Cargo.lock",
        "crates",
        "**/data",
        "crates/dhanhook/data",
    ] {
        assert!(!patterns.contains(kept), ".dockerignore drops {kept}");
    }
    assert!(
        !patterns.iter().any(|p| p.starts_with("crates")),
        "{patterns:?}"
    );
    assert!(repo_root().join("crates/dhanhook/data/holidays").is_dir());
}

// ---------------------------------------------------------------------------------------------
// The runtime stage, stood in for by bubblewrap

/// bwrap (killed on drop; `--die-with-parent` then takes the service with it).
struct Sandbox(Child);

impl Drop for Sandbox {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

/// The command that runs `args` as uid/gid 65534 with `/` read-only and only `data` writable.
/// As root, setpriv drops to the real uid 65534 first (bwrap then maps it onto itself), so
/// files the service writes belong to 65534 on the host too; as any other user bwrap maps that
/// user to 65534 inside.
fn sandboxed(bwrap: &Path, data: &Path, port: u16, as_root: bool, args: &[&str]) -> Command {
    let mut cmd = match (as_root, find_program("setpriv")) {
        (true, Some(setpriv)) => {
            let mut c = Command::new(setpriv);
            c.args(["--reuid", "65534", "--regid", "65534", "--clear-groups"])
                .arg(bwrap);
            c
        }
        _ => Command::new(bwrap),
    };
    cmd.args(["--ro-bind", "/", "/", "--dev", "/dev", "--proc", "/proc"])
        // The data folder at its own path: an empty read-only root cannot get a /data mount point.
        .arg("--bind")
        .args([data, data])
        .args(["--unshare-user", "--uid", "65534", "--gid", "65534"])
        .args(["--die-with-parent", "--new-session", "--clearenv"])
        .arg("--chdir")
        .arg(data)
        .arg("--setenv")
        .arg("DATA_DIR")
        .arg(data)
        .args(["--setenv", "HOST", "127.0.0.1", "--setenv", "PORT"])
        .arg(port.to_string())
        .args(["--setenv", "INSTRUMENTS_URL", "off"])
        .args([
            "--setenv",
            "LOG_FORMAT",
            "json",
            "--setenv",
            "RUST_LOG",
            "info",
        ])
        .arg(env!("CARGO_BIN_EXE_dhanhook"))
        .args(args);
    cmd
}

fn wait_with_timeout(child: &mut Child, limit: Duration) -> Option<ExitStatus> {
    let until = Instant::now() + limit;
    while Instant::now() < until {
        if let Some(status) = child.try_wait().unwrap() {
            return Some(status);
        }
        std::thread::sleep(Duration::from_millis(50));
    }
    None
}

/// The process bwrap started (bwrap without `--unshare-pid` forks the command directly).
fn sandboxed_child(bwrap_pid: u32) -> Option<u32> {
    let children =
        fs::read_to_string(format!("/proc/{bwrap_pid}/task/{bwrap_pid}/children")).ok()?;
    children
        .split_whitespace()
        .filter_map(|p| p.parse().ok())
        .find(|pid: &u32| {
            fs::read_to_string(format!("/proc/{pid}/comm")).is_ok_and(|c| c.trim() == "dhanhook")
        })
}

#[tokio::test]
async fn runs_as_uid_65534_on_a_read_only_root_with_only_data_dir_writable() {
    const TEST: &str = "runs_as_uid_65534_on_a_read_only_root_with_only_data_dir_writable";
    let _ = rustls::crypto::ring::default_provider().install_default();
    let Some(bwrap) = find_program("bwrap") else {
        return skip(TEST, "bwrap is not installed (Debian package: bubblewrap)");
    };
    // /proc/self belongs to this process's effective user.
    let as_root = fs::metadata("/proc/self").unwrap().uid() == 0;

    // The data folder must be writable by 65534, and reachable (std's temp dir is /tmp).
    let data = tempfile::tempdir().unwrap();
    fs::set_permissions(data.path(), fs::Permissions::from_mode(0o777)).unwrap();
    let logs = tempfile::tempdir().unwrap();
    let port = free_port();

    let probe = sandboxed(&bwrap, data.path(), port, as_root, &["--help"])
        .output()
        .unwrap();
    if !probe.status.success() {
        return skip(
            TEST,
            &format!(
                "bwrap cannot create the sandbox here (user namespaces off?): {}",
                String::from_utf8_lossy(&probe.stderr).trim()
            ),
        );
    }
    assert!(
        fs::read_dir(data.path()).unwrap().next().is_none(),
        "--help wrote nothing"
    );

    let log_path = logs.path().join("service.log");
    let log = fs::File::create(&log_path).unwrap();
    let mut sandbox = Sandbox(
        sandboxed(&bwrap, data.path(), port, as_root, &["serve"])
            .stdin(Stdio::null())
            .stdout(log.try_clone().unwrap())
            .stderr(log)
            .spawn()
            .expect("start bwrap"),
    );
    let service_log = || fs::read_to_string(&log_path).unwrap_or_default();

    // Healthy, in paper mode, with the SQLite journal in DATA_DIR.
    let client = reqwest::Client::new();
    let base = format!("http://127.0.0.1:{port}");
    let until = Instant::now() + Duration::from_secs(30);
    let health = loop {
        if let Ok(r) = client.get(format!("{base}/health")).send().await {
            break r;
        }
        if let Some(status) = sandbox.0.try_wait().unwrap() {
            panic!("the service exited ({status}):\n{}", service_log());
        }
        assert!(
            Instant::now() < until,
            "no answer on {base}:\n{}",
            service_log()
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    };
    assert_eq!(health.status(), 200);
    let body: Value = health.json().await.unwrap();
    assert_eq!(body["status"], "healthy", "{body}");
    let info: Value = client
        .get(format!("{base}/"))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(info["mode"], "paper", "{info}");

    // A paper alert is journaled and logged (placed, or routed while the market is closed).
    let secret = fs::read_to_string(data.path().join("webhook_secret"))
        .expect("the generated webhook secret is in DATA_DIR");
    // The real clock runs here: the fire time is now (MAX_ALERT_AGE refuses stale alerts).
    let alert = serde_json::json!({
        "secret": secret.trim(), "symbol": "NSE:RELIANCE", "action": "buy", "quantity": 1,
        "product": "intraday", "price": 2500,
        "timenow": chrono::Utc::now().format("%Y-%m-%dT%H:%M:%SZ").to_string(),
    });
    let answer = client
        .post(format!("{base}/webhook"))
        .json(&alert)
        .send()
        .await
        .unwrap();
    let status = answer.status();
    let answer: Value = answer.json().await.unwrap();
    assert!(
        status.is_success() && answer["mode"] == "paper" && answer["duplicate"] == false,
        "{status} {answer}"
    );

    // SIGTERM to the service itself (bwrap does not pass signals on; it exits with its
    // child's status): a clean shutdown, exit 0.
    let pid = sandboxed_child(sandbox.0.id()).expect("the service runs under bwrap");
    let kill = Command::new("kill")
        .args(["-TERM", &pid.to_string()])
        .status()
        .unwrap();
    assert!(kill.success());
    let exit = wait_with_timeout(&mut sandbox.0, Duration::from_secs(15))
        .unwrap_or_else(|| panic!("still running 15 s after SIGTERM:\n{}", service_log()));
    let log = service_log();
    assert!(exit.success(), "exit after SIGTERM: {exit}\n{log}");
    assert!(log.contains("journal closed"), "{log}");
    // A write attempted anywhere else would have met the read-only root.
    for sign in ["Read-only file system", "os error 30", "Permission denied"] {
        assert!(!log.contains(sign), "{sign}:\n{log}");
    }

    // Everything it wrote is in DATA_DIR, owned by 65534 when it ran as the real 65534.
    let written: BTreeSet<String> = fs::read_dir(data.path())
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .collect();
    for expected in ["dhanhook.db", "webhook_orders.csv", "webhook_secret"] {
        assert!(written.contains(expected), "{expected} in {written:?}");
    }
    let journal = fs::metadata(data.path().join("dhanhook.db")).unwrap();
    assert_eq!(
        journal.mode() & 0o777,
        0o600,
        "journal readable by its owner only"
    );
    if as_root && find_program("setpriv").is_some() {
        for name in &written {
            let owner = fs::metadata(data.path().join(name)).unwrap().uid();
            assert_eq!(owner, 65534, "{name} belongs to uid {owner}");
        }
    }
    let csv = fs::read_to_string(data.path().join("webhook_orders.csv")).unwrap();
    assert!(csv.contains("RELIANCE"), "{csv}");
}
