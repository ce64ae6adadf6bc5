//! `deploy/cloudrun/deploy.sh` against a fake `gcloud` first on PATH. The fake logs each call's
//! argv (one tab-separated line per call) and, in a file of its own per call, whatever arrived on
//! its stdin; it answers `describe` from what earlier `create` calls made (or, with
//! FAKE_ALL_EXIST=1, as if everything existed). Nothing here talks to Google.

use std::fs;
use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::str::FromStr;

const FAKE_GCLOUD: &str = r#"#!/usr/bin/env bash
# Fake gcloud for deploy_cloudrun.rs.
dir=$FAKE_GCLOUD_DIR
{ printf 'gcloud'; printf '\t%s' "$@"; printf '\n'; } >>"$dir/argv.log"
input=$(cat; printf x)
input=${input%x}
if [ -n "$input" ]; then
  n=$(find "$dir/stdin" -type f | wc -l)
  { printf 'gcloud'; printf '\t%s' "$@"; printf '\n%s' "$input"; } >"$dir/stdin/$(printf %04d "$n")"
fi
# The command group, the verb (create/describe) and the resource name.
verb= name= group=
for a in "$@"; do
  case $a in --*) continue ;; esac
  if [ -z "$verb" ]; then
    case $a in create | describe) verb=$a ;; *) group="${group}_$a" ;; esac
  elif [ -z "$name" ]; then
    name=$a
  fi
done
key="${group}_$name"
case "$*" in
  "config get-value project") echo fake-proj-from-config; exit 0 ;;
  *"run services describe"*"value(status.url)"*) echo https://dhanhook-fake-el.a.run.app; exit 0 ;;
  *"secrets versions access"*) echo "ERROR: (gcloud.secrets.versions.access) NOT_FOUND" >&2; exit 1 ;;
esac
if [ "$verb" = create ]; then
  touch "$dir/state/$key"
  echo "Created [$name]."
  exit 0
fi
if [ "$verb" = describe ]; then
  if [ "${FAKE_ALL_EXIST:-0}" = 1 ] || [ -e "$dir/state/$key" ]; then
    case "$*" in
      *"value(address)"*) echo 203.0.113.7 ;;
      *) echo "name: $name" ;;
    esac
    exit 0
  fi
  echo "ERROR: (gcloud) NOT_FOUND: $name" >&2
  exit 1
fi
exit 0
"#;

/// A `.env` shaped like the credentials guide's, every value an obvious fake.
const ENV_POSTGRES: &str = r#"# Dhan API Credentials (Basic)
DHAN_CLIENT_ID=1000000001
DHAN_ACCESS_TOKEN=canary-access-token-not-a-jwt  # Optional: will be auto-generated

# Dhan Auto-Authentication
DHAN_API_KEY=canary-api-key-7
DHAN_API_SECRET="canary-api-secret with spaces # not a comment"
DHAN_TOTP_SECRET=JBSWY3DPEHPK3PXP
DHAN_PIN=123456
DHAN_USER_ID=9000000000
DHAN_PASSWORD='canary-password-unused'

# Webhook Configuration
WEBHOOK_SECRET=canary-webhook-secret-0123456789abcdef
ADMIN_TOKEN=canary-admin-token-fedcba9876543210
ENABLE_DHAN=true
DATABASE_URL=postgres://dhanhook:canary-db-password@10.0.0.5:5432/dhanhook

# Health Check Configuration
AUTO_HEALTH_CHECK=true
HEALTH_CHECK_INTERVAL=21600  # 6 hours
ORDER_RATE_LIMITS=10/s,250/m,1000/h,7000/d
WHEN_CLOSED=queue
AMO_TIME="OPEN_30"
TOKEN_REFRESH_MARGIN=3600
TOKEN_KEY=canary-token-key-00112233445566778899

# Server Configuration
PORT=8080
CSV_LOG_PATH=/app/webhook_orders.csv
"#;

/// Every credential in [`ENV_POSTGRES`] with the secret it must end up in.
const SECRETS: &[(&str, &str, &str)] = &[
    (
        "DHAN_ACCESS_TOKEN",
        "dhanhook-dhan-access-token",
        "canary-access-token-not-a-jwt",
    ),
    ("DHAN_API_KEY", "dhanhook-dhan-api-key", "canary-api-key-7"),
    (
        "DHAN_API_SECRET",
        "dhanhook-dhan-api-secret",
        "canary-api-secret with spaces # not a comment",
    ),
    (
        "DHAN_TOTP_SECRET",
        "dhanhook-dhan-totp-secret",
        "JBSWY3DPEHPK3PXP",
    ),
    ("DHAN_PIN", "dhanhook-dhan-pin", "123456"),
    (
        "WEBHOOK_SECRET",
        "dhanhook-webhook-secret",
        "canary-webhook-secret-0123456789abcdef",
    ),
    (
        "ADMIN_TOKEN",
        "dhanhook-admin-token",
        "canary-admin-token-fedcba9876543210",
    ),
    (
        "TOKEN_KEY",
        "dhanhook-token-key",
        "canary-token-key-00112233445566778899",
    ),
    (
        "DATABASE_URL",
        "dhanhook-database-url",
        "postgres://dhanhook:canary-db-password@10.0.0.5:5432/dhanhook",
    ),
];

/// Values that must never reach gcloud at all.
const UNUSED: &[&str] = &["9000000000", "canary-password-unused"];

/// Fragments of the secrets above that must not leak even in part.
const CANARIES: &[&str] = &[
    "canary-db-password",
    "123456",
    "JBSWY3DPEHPK3PXP",
    "canary-",
];

fn script() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../../deploy/cloudrun/deploy.sh")
}

struct Deploy {
    _dir: tempfile::TempDir,
    code: Option<i32>,
    stdout: String,
    stderr: String,
    /// One entry per gcloud call.
    argv: Vec<Vec<String>>,
    /// (argv, stdin) of each call that was given something on stdin.
    stdin: Vec<(Vec<String>, String)>,
}

impl Deploy {
    fn calls(&self, prefix: &[&str]) -> Vec<&Vec<String>> {
        self.argv
            .iter()
            .filter(|a| a.len() > prefix.len() && a[1..=prefix.len()] == *prefix)
            .collect()
    }

    fn the_call(&self, prefix: &[&str]) -> &Vec<String> {
        let calls = self.calls(prefix);
        assert_eq!(
            calls.len(),
            1,
            "one `gcloud {}` expected: {:#?}",
            prefix.join(" "),
            self.argv
        );
        calls[0]
    }

    fn deploy_call(&self) -> &Vec<String> {
        self.the_call(&["run", "deploy"])
    }

    fn output(&self) -> String {
        format!("{}\n{}", self.stdout, self.stderr)
    }

    fn argv_text(&self) -> String {
        self.argv
            .iter()
            .map(|a| a.join("\t"))
            .collect::<Vec<_>>()
            .join("\n")
    }

    fn assert_ok(&self) {
        assert_eq!(self.code, Some(0), "deploy.sh failed:\n{}", self.output());
    }
}

fn run_deploy(env_file: &str, args: &[&str], all_exist: bool) -> Deploy {
    run_deploy_with(env_file, args, all_exist, false)
}

fn run_deploy_with(env_file: &str, args: &[&str], all_exist: bool, xtrace: bool) -> Deploy {
    let dir = tempfile::tempdir().unwrap();
    let bin = dir.path().join("bin");
    let log = dir.path().join("log");
    for d in [&bin, &log, &log.join("stdin"), &log.join("state")] {
        fs::create_dir_all(d).unwrap();
    }
    let gcloud = bin.join("gcloud");
    fs::write(&gcloud, FAKE_GCLOUD).unwrap();
    fs::set_permissions(&gcloud, fs::Permissions::from_mode(0o755)).unwrap();
    let env_path = dir.path().join("dot.env");
    fs::write(&env_path, env_file).unwrap();

    let path = format!(
        "{}:{}",
        bin.display(),
        std::env::var("PATH").unwrap_or_default()
    );
    let mut cmd = Command::new("bash");
    if xtrace {
        cmd.arg("-x");
    }
    let out = cmd
        .arg(script())
        .arg("--env-file")
        .arg(&env_path)
        .args(args)
        .env("PATH", path)
        .env("FAKE_GCLOUD_DIR", &log)
        .env("FAKE_ALL_EXIST", if all_exist { "1" } else { "0" })
        .env_remove("CLOUDSDK_CORE_PROJECT")
        .current_dir(dir.path())
        .output()
        .expect("bash runs");

    let argv = fs::read_to_string(log.join("argv.log"))
        .unwrap_or_default()
        .lines()
        .map(|l| l.split('\t').map(str::to_owned).collect())
        .collect();
    let mut stdin_files: Vec<_> = fs::read_dir(log.join("stdin"))
        .unwrap()
        .map(|e| e.unwrap().path())
        .collect();
    stdin_files.sort();
    let stdin = stdin_files
        .iter()
        .map(|f| {
            let text = fs::read_to_string(f).unwrap();
            let (head, body) = text.split_once('\n').unwrap();
            (
                head.split('\t').map(str::to_owned).collect(),
                body.to_owned(),
            )
        })
        .collect();
    Deploy {
        _dir: dir,
        code: out.status.code(),
        stdout: String::from_utf8_lossy(&out.stdout).into_owned(),
        stderr: String::from_utf8_lossy(&out.stderr).into_owned(),
        argv,
        stdin,
    }
}

fn flag_value<'a>(call: &'a [String], flag: &str) -> Option<&'a str> {
    let prefix = format!("{flag}=");
    call.iter().find_map(|a| a.strip_prefix(&prefix))
}

fn has(call: &[String], arg: &str) -> bool {
    call.iter().any(|a| a == arg)
}

fn secret_version_adds(d: &Deploy) -> Vec<(String, String)> {
    d.stdin
        .iter()
        .filter(|(argv, _)| argv[1..4] == ["secrets", "versions", "add"])
        .map(|(argv, body)| {
            assert!(
                has(argv, "--data-file=-"),
                "a version is read from stdin: {argv:?}"
            );
            (argv[4].clone(), body.clone())
        })
        .collect()
}

#[test]
fn a_first_deploy_passes_secrets_only_on_stdin_and_sets_up_egress() {
    let d = run_deploy(ENV_POSTGRES, &["--project", "fake-proj"], false);
    d.assert_ok();

    // Each credential: its secret is created, gets the value on stdin, and the runtime account
    // may read it.
    let added = secret_version_adds(&d);
    for (var, name, value) in SECRETS {
        let create = d
            .calls(&["secrets", "create", name])
            .into_iter()
            .next()
            .unwrap_or_else(|| panic!("{name} is not created:\n{}", d.argv_text()));
        assert!(has(create, "--replication-policy=automatic"), "{create:?}");
        assert!(
            added.iter().any(|(n, body)| n == name && body == value),
            "{var}'s value is not added to {name} on stdin: {added:?}"
        );
        let grant = d.the_call(&["secrets", "add-iam-policy-binding", name]);
        assert!(
            has(grant, "--role=roles/secretmanager.secretAccessor"),
            "{grant:?}"
        );
        assert!(
            has(
                grant,
                "--member=serviceAccount:dhanhook-run@fake-proj.iam.gserviceaccount.com"
            ),
            "{grant:?}"
        );
    }
    assert_eq!(added.len(), SECRETS.len(), "{added:?}");
    // Nothing else got anything on stdin.
    assert_eq!(d.stdin.len(), SECRETS.len(), "{:?}", d.stdin);

    // No secret value, nor the unused login, on any command line or in the script's output.
    let argv = d.argv_text();
    let output = d.output();
    for value in SECRETS
        .iter()
        .map(|s| s.2)
        .chain(UNUSED.iter().copied())
        .chain(CANARIES.iter().copied())
    {
        assert!(
            !argv.contains(value),
            "{value:?} is on a gcloud command line:\n{argv}"
        );
        assert!(
            !output.contains(value),
            "{value:?} is in deploy.sh's output:\n{output}"
        );
    }
    for value in UNUSED {
        assert!(
            d.stdin.iter().all(|(_, body)| !body.contains(value)),
            "{value} reached gcloud"
        );
    }
    assert!(
        output.contains("DHAN_USER_ID is in") && output.contains("unused"),
        "{output}"
    );
    assert!(output.contains("DHAN_PASSWORD is in"), "{output}");

    // The deploy: non-secret variables added, never replaced; secrets by reference.
    let deploy = d.deploy_call();
    assert!(!argv.contains("--set-env-vars"), "{argv}");
    assert!(!argv.contains("--set-secrets"), "{argv}");
    let env = flag_value(deploy, "--update-env-vars").expect("--update-env-vars");
    let env = env
        .strip_prefix("^|^")
        .expect("a custom delimiter, for values with commas");
    let mut env: Vec<&str> = env.split('|').collect();
    env.sort_unstable();
    assert_eq!(
        env,
        [
            "AMO_TIME=OPEN_30",
            "AUTO_HEALTH_CHECK=true",
            "DHAN_CLIENT_ID=1000000001",
            "ENABLE_DHAN=true",
            "HEALTH_CHECK_INTERVAL=21600",
            "LOG_FORMAT=json",
            "ORDER_RATE_LIMITS=10/s,250/m,1000/h,7000/d",
            "TOKEN_REFRESH_MARGIN=3600",
            "WHEN_CLOSED=queue",
        ]
    );
    let mut refs: Vec<&str> = flag_value(deploy, "--update-secrets")
        .expect("--update-secrets")
        .split(',')
        .collect();
    refs.sort_unstable();
    let mut want: Vec<String> = SECRETS
        .iter()
        .map(|(var, name, _)| format!("{var}={name}:latest"))
        .collect();
    want.sort_unstable();
    assert_eq!(refs, want);

    for arg in [
        "--min-instances=1",
        "--no-cpu-throttling",
        "--timeout=60",
        "--port=8080",
        "--allow-unauthenticated",
        "--region=asia-south1",
        "--project=fake-proj",
        "--vpc-egress=all-traffic",
        "--network=default",
        "--subnet=default",
        "--service-account=dhanhook-run@fake-proj.iam.gserviceaccount.com",
    ] {
        assert!(has(deploy, arg), "{arg} missing from {deploy:?}");
    }
    assert_eq!(deploy[3], "dhanhook");
    assert!(
        flag_value(deploy, "--max-instances").is_none(),
        "PostgreSQL allows several"
    );
    assert!(flag_value(deploy, "--add-cloudsql-instances").is_none());

    // The egress: the address, a router, and a NAT that uses that address.
    let address = d.the_call(&["compute", "addresses", "create"]);
    assert_eq!(address[4], "dhanhook-egress");
    assert!(has(address, "--region=asia-south1"));
    d.the_call(&["compute", "routers", "create"]);
    let nat = d.the_call(&["compute", "routers", "nats", "create"]);
    assert!(
        has(nat, "--nat-external-ip-pool=dhanhook-egress"),
        "{nat:?}"
    );
    assert!(has(nat, "--nat-all-subnet-ip-ranges"), "{nat:?}");
    assert!(has(nat, "--router=dhanhook-router"), "{nat:?}");
    // ... created before the service is deployed.
    let position = |call: &Vec<String>| d.argv.iter().position(|a| a == call).unwrap();
    assert!(position(nat) < position(deploy));
    assert!(
        d.calls(&["sql"]).is_empty(),
        "a postgres DATABASE_URL needs no Cloud SQL"
    );

    // What the user is told.
    let out = &d.stdout;
    assert!(
        out.contains("TradingView webhook:  https://dhanhook-fake-el.a.run.app/webhook"),
        "{out}"
    );
    assert!(out.contains("203.0.113.7"), "{out}");
    assert!(
        out.contains("My Profile > DhanHQ Trading APIs > Static IP"),
        "{out}"
    );
    assert!(out.contains("PRIMARY") && out.contains("7 days"), "{out}");
    assert!(
        out.contains("curl https://dhanhook-fake-el.a.run.app/health"),
        "{out}"
    );
    assert!(
        out.contains("curl https://dhanhook-fake-el.a.run.app/ready"),
        "{out}"
    );
}

#[test]
fn a_second_run_creates_nothing_and_deploys_again() {
    let d = run_deploy(ENV_POSTGRES, &["--project", "fake-proj"], true);
    d.assert_ok();
    let creates: Vec<_> = d.argv.iter().filter(|a| has(a, "create")).collect();
    assert!(creates.is_empty(), "created again: {creates:?}");
    assert!(!d.calls(&["secrets", "describe"]).is_empty());
    assert!(!d.calls(&["compute", "addresses", "describe"]).is_empty());
    assert!(
        !d.calls(&["compute", "routers", "nats", "describe"])
            .is_empty()
    );
    let deploy = d.deploy_call();
    assert!(flag_value(deploy, "--update-secrets").is_some());
    assert!(has(deploy, "--vpc-egress=all-traffic"));
    // The values still reach Secret Manager on stdin only (the fake has no readable version to
    // compare with, so each gets a new one).
    assert_eq!(secret_version_adds(&d).len(), SECRETS.len());
    let argv = d.argv_text();
    for (_, _, value) in SECRETS {
        assert!(!argv.contains(value), "{value}");
    }
    assert!(d.stdout.contains("203.0.113.7"), "{}", d.stdout);
}

#[test]
fn a_sqlite_journal_is_refused_unless_ephemeral_journal() {
    let env = ENV_POSTGRES.replace(
        "DATABASE_URL=postgres://dhanhook:canary-db-password@10.0.0.5:5432/dhanhook",
        "DATABASE_URL=sqlite://./data/dhanhook.db",
    );
    let d = run_deploy(&env, &["--project", "fake-proj"], false);
    assert_ne!(d.code, Some(0), "{}", d.output());
    assert!(d.stderr.contains("--ephemeral-journal"), "{}", d.stderr);
    assert!(
        d.stderr.contains("dedupe") && d.stderr.contains("2-minute"),
        "{}",
        d.stderr
    );
    assert!(d.argv.is_empty(), "nothing may run: {:#?}", d.argv);

    let d = run_deploy(
        &env,
        &["--project", "fake-proj", "--ephemeral-journal"],
        false,
    );
    d.assert_ok();
    assert!(
        d.stderr.contains("warning: --ephemeral-journal"),
        "{}",
        d.stderr
    );
    let deploy = d.deploy_call();
    assert!(
        has(deploy, "--max-instances=1"),
        "one instance, one journal: {deploy:?}"
    );
    let refs = flag_value(deploy, "--update-secrets").unwrap();
    assert!(!refs.contains("DATABASE_URL"), "{refs}");
    assert!(
        !flag_value(deploy, "--update-env-vars")
            .unwrap()
            .contains("DATABASE_URL")
    );
    assert!(d.calls(&["sql"]).is_empty());
    assert!(!d.argv_text().contains("sqlite"));
}

#[test]
fn dry_run_runs_no_gcloud_and_masks_secrets() {
    let d = run_deploy(
        ENV_POSTGRES,
        &["--project", "fake-proj", "--dry-run"],
        false,
    );
    d.assert_ok();
    assert!(d.argv.is_empty(), "--dry-run ran gcloud: {:#?}", d.argv);
    let out = d.output();
    for (_, name, value) in SECRETS {
        assert!(!out.contains(value), "{value:?} printed:\n{out}");
        assert!(
            out.contains(&format!(
                "+ printf %s *** | gcloud secrets versions add {name} --data-file=-"
            )),
            "{name}:\n{out}"
        );
    }
    for value in CANARIES.iter().chain(UNUSED) {
        assert!(!out.contains(value), "{value:?} printed:\n{out}");
    }
    for cmd in [
        "+ gcloud compute addresses create dhanhook-egress",
        "+ gcloud compute routers nats create dhanhook-nat",
        "--nat-external-ip-pool=dhanhook-egress",
        "+ gcloud run deploy dhanhook",
        "--update-env-vars=",
        "--min-instances=1",
        "--no-cpu-throttling",
        "--vpc-egress=all-traffic",
    ] {
        assert!(d.stdout.contains(cmd), "{cmd} not printed:\n{}", d.stdout);
    }
}

#[test]
fn without_database_url_a_cloud_sql_journal_is_made_and_its_password_stays_off_command_lines() {
    let env: String = ENV_POSTGRES
        .lines()
        .filter(|l| !l.starts_with("DATABASE_URL="))
        .map(|l| format!("{l}\n"))
        .collect();
    let d = run_deploy(&env, &["--project", "fake-proj"], false);
    d.assert_ok();

    let instance = d.the_call(&["sql", "instances", "create"]);
    assert_eq!(instance[4], "dhanhook-db");
    for arg in [
        "--database-version=POSTGRES_16",
        "--tier=db-f1-micro",
        "--region=asia-south1",
    ] {
        assert!(has(instance, arg), "{arg}: {instance:?}");
    }
    assert_eq!(d.the_call(&["sql", "databases", "create"])[4], "dhanhook");
    let user = d.the_call(&["sql", "users", "create"]);
    assert!(
        user.iter().all(|a| !a.starts_with("--password")),
        "{user:?}"
    );

    // The password: on set-password's stdin, and inside the DATABASE_URL secret's value.
    let (_, password) = d
        .stdin
        .iter()
        .find(|(argv, _)| argv[1..4] == ["sql", "users", "set-password"])
        .expect("set-password is given the password on stdin");
    let password = password.trim_end();
    assert!(password.len() >= 32, "{password:?}");
    let set = d.the_call(&["sql", "users", "set-password"]);
    assert!(has(set, "--prompt-for-password"), "{set:?}");
    let (_, url) = secret_version_adds(&d)
        .into_iter()
        .find(|(name, _)| name == "dhanhook-database-url")
        .expect("the DATABASE_URL secret");
    assert_eq!(
        url,
        format!(
            "postgres://dhanhook:{password}@localhost/dhanhook?host=/cloudsql/fake-proj:asia-south1:dhanhook-db"
        )
    );
    assert!(
        !d.argv_text().contains(password),
        "the password is on a command line"
    );
    assert!(!d.output().contains(password), "the password is printed");
    // dhanhook's PostgreSQL driver reads that as the Cloud SQL unix socket.
    let options = sqlx::postgres::PgConnectOptions::from_str(&url).unwrap();
    assert_eq!(
        options.get_socket().unwrap(),
        Path::new("/cloudsql/fake-proj:asia-south1:dhanhook-db")
    );
    assert_eq!(options.get_database(), Some("dhanhook"));

    let deploy = d.deploy_call();
    assert!(
        has(
            deploy,
            "--add-cloudsql-instances=fake-proj:asia-south1:dhanhook-db"
        ),
        "{deploy:?}"
    );
    assert!(
        flag_value(deploy, "--update-secrets")
            .unwrap()
            .contains("DATABASE_URL=dhanhook-database-url:latest")
    );
    let grant = d.the_call(&["projects", "add-iam-policy-binding"]);
    assert!(has(grant, "--role=roles/cloudsql.client"), "{grant:?}");

    // Run again with everything in place: the stored URL is kept, no new password.
    let again = run_deploy(&env, &["--project", "fake-proj"], true);
    again.assert_ok();
    assert!(
        again
            .argv
            .iter()
            .all(|a| !has(a, "create") && !has(a, "set-password")),
        "{}",
        again.argv_text()
    );
    assert!(
        flag_value(again.deploy_call(), "--update-secrets")
            .unwrap()
            .contains("DATABASE_URL=dhanhook-database-url:latest")
    );
}

#[test]
fn bash_xtrace_shows_no_secret() {
    let d = run_deploy_with(ENV_POSTGRES, &["--project", "fake-proj"], false, true);
    d.assert_ok();
    let out = d.output();
    for value in SECRETS.iter().map(|s| s.2).chain(CANARIES.iter().copied()) {
        assert!(!out.contains(value), "{value:?} in bash -x output");
    }
}

#[test]
fn the_project_defaults_to_gcloud_config() {
    let d = run_deploy(ENV_POSTGRES, &[], false);
    d.assert_ok();
    d.the_call(&["config", "get-value", "project"]);
    assert!(has(d.deploy_call(), "--project=fake-proj-from-config"));
}

#[test]
fn shellcheck_passes() {
    let version = Command::new("shellcheck").arg("--version").output();
    if !matches!(version, Ok(ref o) if o.status.success()) {
        println!("skipped: shellcheck not installed");
        return;
    }
    let out = Command::new("shellcheck").arg(script()).output().unwrap();
    assert!(
        out.status.success(),
        "shellcheck deploy/cloudrun/deploy.sh:\n{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
}

/// dhanhook needs TOKEN_KEY with a PostgreSQL journal (the stored Dhan token is encrypted with
/// it, the same for every instance): without one in .env a key is generated once, handed to
/// Secret Manager on stdin only, and reused on later runs (a new key would drop the token).
#[test]
fn without_token_key_one_is_generated_once_and_kept_in_secret_manager() {
    let env: String = ENV_POSTGRES
        .lines()
        .filter(|l| !l.starts_with("TOKEN_KEY="))
        .map(|l| format!("{l}\n"))
        .collect();
    let d = run_deploy(&env, &["--project", "fake-proj"], false);
    d.assert_ok();
    let (_, key) = secret_version_adds(&d)
        .into_iter()
        .find(|(name, _)| name == "dhanhook-token-key")
        .expect("a generated TOKEN_KEY secret");
    let key = key.trim_end();
    assert_eq!(key.len(), 44, "32 bytes in base64: {key:?}");
    assert!(!d.argv_text().contains(key), "the key is on a command line");
    assert!(!d.output().contains(key), "the key is printed");
    assert!(
        flag_value(d.deploy_call(), "--update-secrets")
            .unwrap()
            .contains("TOKEN_KEY=dhanhook-token-key:latest")
    );

    let again = run_deploy(&env, &["--project", "fake-proj"], true);
    again.assert_ok();
    assert!(
        secret_version_adds(&again)
            .iter()
            .all(|(name, _)| name != "dhanhook-token-key"),
        "the key is not replaced"
    );
    assert!(
        flag_value(again.deploy_call(), "--update-secrets")
            .unwrap()
            .contains("TOKEN_KEY=dhanhook-token-key:latest")
    );
}
