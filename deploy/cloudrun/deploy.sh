#!/usr/bin/env bash
# Deploy dhanhook to Google Cloud Run from the same .env as the credentials guide.
#
# What it sets up (each step is guarded by a describe, so a second run updates in place):
#   * a runtime service account (<service>-run) that may read only this service's secrets;
#   * one Secret Manager secret per credential in .env (<service>-dhan-pin, ...). A value reaches
#     gcloud only on STDIN (`gcloud secrets versions add NAME --data-file=-`), never on a command
#     line; a new version is added only when the value differs from the latest one;
#   * the journal: a postgres:// DATABASE_URL from .env, or, when .env has none, a Cloud SQL
#     PostgreSQL instance (dhanhook-db) reached over its unix socket. A sqlite journal on Cloud Run
#     is lost with every instance, so it is refused unless --ephemeral-journal;
#   * a static egress IP (Dhan accepts orders only from a whitelisted IP): a reserved address,
#     a Cloud Router and Cloud NAT using it, and Direct VPC egress for all of the service's traffic;
#   * the service: always-on CPU, one warm instance, 60 s request timeout, port 8080, public
#     (TradingView cannot authenticate: the webhook secret and ADMIN_TOKEN protect it).
# Non-secret variables go with --update-env-vars and secrets with --update-secrets: both add or
# change only the variables named, unlike the upstream's --set-env-vars/--set-secrets, which
# replaced everything and silently dropped WEBHOOK_SECRET. The other side of that: a variable
# deleted from .env stays on the service; remove it with
#   gcloud run services update SERVICE --region R --remove-env-vars=NAME   (or --remove-secrets=NAME)
#
# Secret values are held in shell variables, so xtrace (bash -x) is switched off below: use
# --dry-run to see every command (values shown as ***).
#
# Needs bash >= 4, gcloud (authenticated, with rights to create these resources) and openssl or
# /dev/urandom. Run `deploy.sh --help` for the options.
set -euo pipefail
{ set +x; } 2>/dev/null

usage() {
  cat <<'EOF'
Usage: deploy/cloudrun/deploy.sh [options]

Deploys dhanhook to Cloud Run with its credentials in Secret Manager, a durable journal and a
static egress IP for Dhan's whitelist.

Options:
  --env-file PATH       the .env to read (default ./.env); parsed, never sourced
  --project ID          GCP project (default: $CLOUDSDK_CORE_PROJECT, else gcloud's configured one)
  --region REGION       Cloud Run / NAT / Cloud SQL region (default asia-south1, Mumbai)
  --service NAME        Cloud Run service name, also the prefix of its secrets (default dhanhook)
  --image IMAGE         deploy this container image (default: build this repository with --source)
  --network NAME        VPC network for the egress (default default)
  --subnet NAME         subnet in REGION for Direct VPC egress (default default)
  --ephemeral-journal   accept a sqlite journal that is lost whenever the instance is replaced
  --dry-run             print every gcloud command (secret values as ***) and run none
  -h, --help            this text

.env: KEY=value lines; "# ..." comments (also after a value, preceded by a space) and surrounding
quotes are stripped. DHAN_USER_ID and DHAN_PASSWORD are ignored (dhanhook mints with DHAN_PIN).
EOF
}

die() {
  printf 'deploy.sh: error: %s\n' "$*" >&2
  exit 1
}
warn() { printf 'deploy.sh: warning: %s\n' "$*" >&2; }
say() { printf '%s\n' "$*"; }

if ((BASH_VERSINFO[0] < 4)); then
  die "bash 4 or later is needed (this is $BASH_VERSION)"
fi

env_file=./.env
project=${CLOUDSDK_CORE_PROJECT:-}
region=asia-south1
service=dhanhook
image=
network=default
subnet=default
ephemeral=0
dry_run=0

need_value() { [[ $# -ge 2 && -n $2 ]] || die "$1 needs a value"; }
while [[ $# -gt 0 ]]; do
  case $1 in
    --env-file) need_value "$@"; env_file=$2; shift 2 ;;
    --env-file=*) env_file=${1#*=}; shift ;;
    --project) need_value "$@"; project=$2; shift 2 ;;
    --project=*) project=${1#*=}; shift ;;
    --region) need_value "$@"; region=$2; shift 2 ;;
    --region=*) region=${1#*=}; shift ;;
    --service) need_value "$@"; service=$2; shift 2 ;;
    --service=*) service=${1#*=}; shift ;;
    --image) need_value "$@"; image=$2; shift 2 ;;
    --image=*) image=${1#*=}; shift ;;
    --network) need_value "$@"; network=$2; shift 2 ;;
    --network=*) network=${1#*=}; shift ;;
    --subnet) need_value "$@"; subnet=$2; shift 2 ;;
    --subnet=*) subnet=${1#*=}; shift ;;
    --ephemeral-journal) ephemeral=1; shift ;;
    --dry-run) dry_run=1; shift ;;
    -h | --help) usage; exit 0 ;;
    *) usage >&2; die "unknown option: $1" ;;
  esac
done

[[ $service =~ ^[a-z]([-a-z0-9]{0,40}[a-z0-9])?$ ]] ||
  die "--service must be lowercase letters, digits and hyphens (got '$service')"

# ---------------------------------------------------------------------------------------------
# .env, parsed without `source` (a value may hold spaces, quotes, $ or a trailing comment).

declare -A env=()
declare -a env_order=()

parse_env_file() {
  local file=$1 line key value n=0
  while IFS= read -r line || [[ -n $line ]]; do
    n=$((n + 1))
    line=${line%$'\r'}
    # Leading whitespace, blank lines, comment lines, an optional `export `.
    line=${line#"${line%%[![:space:]]*}"}
    [[ -z $line || $line == \#* ]] && continue
    [[ $line == export[[:space:]]* ]] && line=${line#export} && line=${line#"${line%%[![:space:]]*}"}
    if [[ ! $line =~ ^([A-Za-z_][A-Za-z0-9_]*)[[:space:]]*=[[:space:]]*(.*)$ ]]; then
      die "$file:$n: not a KEY=value line"
    fi
    key=${BASH_REMATCH[1]}
    value=${BASH_REMATCH[2]}
    if [[ $value == \"* ]]; then
      # "double quoted": up to the closing quote; \" and \\ inside are unescaped.
      if [[ ! $value =~ ^\"((\\.|[^\"\\])*)\"[[:space:]]*(#.*)?$ ]]; then
        die "$file:$n: $key: unterminated or trailing text after a double-quoted value"
      fi
      value=${BASH_REMATCH[1]}
      value=${value//\\\"/\"}
      value=${value//\\\\/\\}
    elif [[ $value == \'* ]]; then
      # 'single quoted': taken literally.
      if [[ ! $value =~ ^\'([^\']*)\'[[:space:]]*(#.*)?$ ]]; then
        die "$file:$n: $key: unterminated or trailing text after a single-quoted value"
      fi
      value=${BASH_REMATCH[1]}
    else
      # Unquoted: a # preceded by whitespace starts a comment (a#b stays a#b); trailing spaces go.
      if [[ $value =~ ^(.*[^[:space:]])?[[:space:]]+#.*$ || $value =~ ^#.*$ ]]; then
        value=${BASH_REMATCH[1]:-}
      fi
      value=${value%"${value##*[![:space:]]}"}
    fi
    [[ -v "env[$key]" ]] || env_order+=("$key")
    env[$key]=$value
  done <"$file"
}

[[ -f $env_file ]] || die "no .env file at $env_file (use --env-file PATH)"
parse_env_file "$env_file"

# Credentials: each becomes a Secret Manager secret. Any other variable whose name ends in
# TOKEN, SECRET, PASSWORD, _PIN or _KEY (e.g. TELEGRAM_BOT_TOKEN) is treated as one too.
known_secrets=" DHAN_PIN DHAN_TOTP_SECRET WEBHOOK_SECRET ADMIN_TOKEN DHAN_API_KEY DHAN_API_SECRET DHAN_ACCESS_TOKEN DATABASE_URL TOKEN_KEY "
# The upstream's login, which no Dhan API takes: never sent anywhere.
unused_vars=" DHAN_USER_ID DHAN_PASSWORD "
# Cloud Run (or the image) decides these: PORT is injected, the filesystem is the container's.
platform_vars=" PORT HOST DATA_DIR CSV_LOG_PATH "

is_secret_name() {
  [[ $known_secrets == *" $1 "* || $1 == *TOKEN || $1 == *SECRET || $1 == *PASSWORD || $1 == *_PIN || $1 == *_KEY ]]
}

declare -a secret_vars=() plain_vars=()
for key in "${env_order[@]}"; do
  if [[ $unused_vars == *" $key "* ]]; then
    say "note: $key is in $env_file but unused: dhanhook mints its Dhan token with DHAN_PIN + DHAN_TOTP_SECRET; it is not deployed."
  elif [[ $platform_vars == *" $key "* ]]; then
    say "note: $key is set by Cloud Run / the image; the value in $env_file is not deployed."
  elif [[ $key == DATABASE_URL ]]; then
    : # decided below
  elif [[ $key == LOG_FORMAT ]]; then
    : # forced to json below
  elif is_secret_name "$key"; then
    [[ -n ${env[$key]} ]] && secret_vars+=("$key")
  else
    plain_vars+=("$key")
  fi
done

[[ -n ${env[WEBHOOK_SECRET]:-} ]] ||
  die "WEBHOOK_SECRET is not set in $env_file: set a long random one (openssl rand -hex 32) and put the same in your TradingView alerts (a generated one would change with every Cloud Run instance)"
if [[ -z ${env[DHAN_PIN]:-} && ${env[ENABLE_DHAN]:-false} =~ ^(true|1|yes|on)$ ]]; then
  warn "DHAN_PIN is not set: dhanhook cannot mint its own daily token (see README, Live trading at Dhan)"
fi
if [[ ${env[SHUTDOWN_TIMEOUT]:-8} =~ ^[0-9]+$ ]] && ((${env[SHUTDOWN_TIMEOUT]:-8} > 9)); then
  warn "SHUTDOWN_TIMEOUT=${env[SHUTDOWN_TIMEOUT]} is longer than Cloud Run's 10 s between SIGTERM and SIGKILL; the default 8 fits"
fi

# The journal (dedupe keys, queue, stored Dhan token).
database_url=${env[DATABASE_URL]:-}
journal=
case $database_url in
  postgres://* | postgresql://*) journal=postgres ;;
  "") journal=cloudsql ;;
  sqlite:*) journal=sqlite ;;
  *) die "DATABASE_URL in $env_file must start with postgres://, postgresql:// or sqlite:" ;;
esac
if ((ephemeral)) && [[ $journal != postgres ]]; then
  journal=ephemeral
fi
if [[ $journal == sqlite ]]; then
  cat >&2 <<'EOF'
deploy.sh: error: DATABASE_URL is a sqlite: journal. On Cloud Run its file lives in the instance's
memory and is lost whenever the instance is replaced (every deploy, crash or scale event). Lost:
  - the dedupe keys: an alert TradingView re-sends after a restart can be placed twice;
  - the queue: alerts held for the next session are dropped;
  - the stored Dhan token: the new instance mints another, which kills the old one, and a second
    mint must wait out Dhan's 2-minute cooldown (alerts in between are rejected).
Use a postgres:// DATABASE_URL, remove DATABASE_URL to have this script create a Cloud SQL
PostgreSQL instance, or pass --ephemeral-journal to accept the loss.
EOF
  exit 2
fi
if [[ $journal == ephemeral ]]; then
  warn "--ephemeral-journal: the sqlite journal is lost with every instance (dedupe keys, queued alerts, the stored Dhan token: a new instance mints again, killing the old token, and may wait out Dhan's 2-minute cooldown). Deploying with --max-instances=1."
elif [[ $journal == postgres ]]; then
  secret_vars+=(DATABASE_URL)
fi

# ---------------------------------------------------------------------------------------------
# Running gcloud: every command is echoed (no secret is ever an argument, so echoing is safe);
# --dry-run only echoes. A describe in --dry-run counts as "missing", so the creates are shown.

show() {
  local q
  q=$(printf '%q ' "$@")
  printf '+ %s\n' "${q% }"
}
run() {
  show "$@"
  ((dry_run)) && return 0
  "$@"
}
exists() {
  if ((dry_run)); then
    show "$@"
    return 1
  fi
  "$@" >/dev/null 2>&1
}
# query PLACEHOLDER CMD...: CMD's stdout, or PLACEHOLDER under --dry-run.
query() {
  local placeholder=$1
  shift
  if ((dry_run)); then
    show "$@" >&2
    printf '%s' "$placeholder"
    return 0
  fi
  "$@"
}
# pipe_secret VALUE CMD...: runs CMD with VALUE on its stdin; the echo shows *** instead.
pipe_secret() {
  local value=$1
  shift
  local q
  q=$(printf '%q ' "$@")
  printf '+ printf %%s *** | %s\n' "${q% }"
  ((dry_run)) && return 0
  printf '%s' "$value" | "$@"
}

# 32 random bytes in base64 (44 characters), as TOKEN_KEY takes them.
random_base64_key() {
  if command -v openssl >/dev/null; then
    openssl rand -base64 32
  else
    head -c 32 /dev/urandom | base64 | tr -d '\n'
  fi
}

random_hex() {
  if command -v openssl >/dev/null; then
    openssl rand -hex 24
  else
    head -c 24 /dev/urandom | od -An -tx1 | tr -d ' \n'
  fi
}

if [[ -z $project ]]; then
  project=$(query PROJECT_ID gcloud config get-value project 2>/dev/null) || true
  [[ -n $project ]] || die "no project: pass --project ID or run gcloud config set project ID"
fi
[[ $project =~ ^[a-z][-a-z0-9:.]*$ ]] || die "odd project id '$project'"

p=(--project="$project")
sa_name="${service}-run"
sa_email="$sa_name@$project.iam.gserviceaccount.com"
secret_prefix=$service
say "== deploying $service to project $project, region $region$( ((dry_run)) && printf ' (dry run: nothing is run)')"

# ---------------------------------------------------------------------------------------------
say "== APIs"
run gcloud services enable run.googleapis.com secretmanager.googleapis.com compute.googleapis.com \
  sqladmin.googleapis.com cloudbuild.googleapis.com artifactregistry.googleapis.com "${p[@]}"

say "== runtime service account $sa_email"
if ! exists gcloud iam service-accounts describe "$sa_email" "${p[@]}"; then
  run gcloud iam service-accounts create "$sa_name" --display-name="dhanhook Cloud Run runtime" "${p[@]}"
fi

# ---------------------------------------------------------------------------------------------
say "== static egress IP (Dhan accepts orders only from a whitelisted IP)"
address=dhanhook-egress
router=dhanhook-router
nat=dhanhook-nat
if ! exists gcloud compute addresses describe "$address" --region="$region" "${p[@]}"; then
  run gcloud compute addresses create "$address" --region="$region" "${p[@]}"
fi
if ! exists gcloud compute routers describe "$router" --region="$region" "${p[@]}"; then
  run gcloud compute routers create "$router" --network="$network" --region="$region" "${p[@]}"
fi
if ! exists gcloud compute routers nats describe "$nat" --router="$router" --region="$region" "${p[@]}"; then
  run gcloud compute routers nats create "$nat" --router="$router" --region="$region" \
    --nat-external-ip-pool="$address" --nat-all-subnet-ip-ranges "${p[@]}"
fi
egress_ip=$(query '<the reserved IP>' gcloud compute addresses describe "$address" --region="$region" \
  --format='value(address)' "${p[@]}")

# ---------------------------------------------------------------------------------------------
cloudsql_instance=dhanhook-db
cloudsql_connection="$project:$region:$cloudsql_instance"
if [[ $journal == cloudsql ]]; then
  say "== journal: Cloud SQL PostgreSQL $cloudsql_connection (DATABASE_URL absent from $env_file)"
  db_name=${service//-/_}
  db_user=${service//-/_}
  if ! exists gcloud sql instances describe "$cloudsql_instance" "${p[@]}"; then
    # db-f1-micro is a shared-core tier, offered only in the Enterprise edition. The instance
    # keeps Cloud SQL's default public IP with no authorized networks: Cloud Run reaches it
    # through its built-in connector (--add-cloudsql-instances, IAM-authorized, the /cloudsql
    # socket), which with --vpc-egress=all-traffic leaves through the NAT like everything else.
    # Google's docs prefer a private IP when all egress goes through the VPC; that needs private
    # services access (VPC peering) set up first, which this script does not do.
    run gcloud sql instances create "$cloudsql_instance" --database-version=POSTGRES_16 \
      --edition=enterprise --tier=db-f1-micro --region="$region" "${p[@]}"
  fi
  if ! exists gcloud sql databases describe "$db_name" --instance="$cloudsql_instance" "${p[@]}"; then
    run gcloud sql databases create "$db_name" --instance="$cloudsql_instance" "${p[@]}"
  fi
  url_secret="$secret_prefix-database-url"
  if exists gcloud secrets versions describe latest --secret="$url_secret" "${p[@]}"; then
    # Made by an earlier run: the user's password is only in there. Delete the secret to
    # have a new password set.
    say "reusing the DATABASE_URL in secret $url_secret"
  else
    if ! exists gcloud sql users describe "$db_user" --instance="$cloudsql_instance" "${p[@]}"; then
      # Created without a password (no --password: that would put it on the command line)...
      run gcloud sql users create "$db_user" --instance="$cloudsql_instance" "${p[@]}"
    fi
    # ...and given one through --prompt-for-password, which reads it with Python's getpass:
    # that reads the terminal when there is one, so setsid detaches gcloud from it and getpass
    # falls back to stdin.
    db_password=$(random_hex)
    [[ ${#db_password} -ge 32 ]] || die "could not generate a password (openssl or /dev/urandom)"
    command -v setsid >/dev/null || ((dry_run)) || die "setsid (util-linux) is needed to hand the database password to gcloud on stdin"
    pipe_secret "$db_password"$'\n' setsid -w gcloud sql users set-password "$db_user" \
      --instance="$cloudsql_instance" --prompt-for-password "${p[@]}"
    # The host query parameter (a path) makes it the Cloud SQL unix socket. "localhost" only fills
    # the URL's host part: sqlx refuses libpq's empty-host form (postgres://u:p@/db?host=...).
    env[DATABASE_URL]="postgres://$db_user:$db_password@localhost/$db_name?host=/cloudsql/$cloudsql_connection"
    secret_vars+=(DATABASE_URL)
  fi
  run gcloud projects add-iam-policy-binding "$project" --member="serviceAccount:$sa_email" \
    --role=roles/cloudsql.client --condition=None --format=none
fi

# The stored Dhan token is encrypted with TOKEN_KEY, and every instance on the PostgreSQL journal
# needs the same one (dhanhook refuses to start without it). Without one in .env it is generated
# once and kept in Secret Manager; later runs reuse it (a new key would drop the stored token).
token_key_ref=
if [[ $journal != ephemeral && -z ${env[TOKEN_KEY]:-} ]]; then
  key_secret="$secret_prefix-token-key"
  if exists gcloud secrets versions describe latest --secret="$key_secret" "${p[@]}"; then
    say "reusing TOKEN_KEY from secret $key_secret"
    token_key_ref="TOKEN_KEY=$key_secret:latest"
  else
    env[TOKEN_KEY]=$(random_base64_key)
    [[ ${#env[TOKEN_KEY]} -eq 44 ]] || die "could not generate TOKEN_KEY (openssl or /dev/urandom)"
    secret_vars+=(TOKEN_KEY)
  fi
fi

# ---------------------------------------------------------------------------------------------
say "== secrets (values go to gcloud on stdin only)"
declare -a secret_refs=()
secret_name() {
  local n=${1,,}
  printf '%s-%s' "$secret_prefix" "${n//_/-}"
}
for key in "${secret_vars[@]}"; do
  [[ -n $key ]] || continue
  name=$(secret_name "$key")
  value=${env[$key]}
  if exists gcloud secrets describe "$name" "${p[@]}"; then
    current=
    ((dry_run)) || current=$(gcloud secrets versions access latest --secret="$name" "${p[@]}" 2>/dev/null) || current=
    if ((!dry_run)) && [[ $current == "$value" ]]; then
      say "secret $name: unchanged"
    else
      pipe_secret "$value" gcloud secrets versions add "$name" --data-file=- "${p[@]}"
    fi
  else
    run gcloud secrets create "$name" --replication-policy=automatic "${p[@]}"
    pipe_secret "$value" gcloud secrets versions add "$name" --data-file=- "${p[@]}"
  fi
  run gcloud secrets add-iam-policy-binding "$name" --member="serviceAccount:$sa_email" \
    --role=roles/secretmanager.secretAccessor --format=none "${p[@]}"
  secret_refs+=("$key=$name:latest")
done
[[ -z $token_key_ref ]] || secret_refs+=("$token_key_ref")
# In Cloud SQL mode on a second run DATABASE_URL is not re-read, but the service still needs it.
if [[ $journal == cloudsql && ! " ${secret_vars[*]} " == *" DATABASE_URL "* ]]; then
  secret_refs+=("DATABASE_URL=$secret_prefix-database-url:latest")
fi
unset value current db_password

# ---------------------------------------------------------------------------------------------
say "== Cloud Run service $service"
# Non-secret variables. gcloud's ^DELIM^ syntax lets a value hold commas (ORDER_RATE_LIMITS).
delim='|'
env_pairs=("LOG_FORMAT=json")
for key in "${plain_vars[@]}"; do
  [[ ${env[$key]} != *"$delim"* ]] || die "$key's value contains '$delim', which this script uses as separator"
  env_pairs+=("$key=${env[$key]}")
done
env_arg="^$delim^$(
  IFS=$delim
  printf '%s' "${env_pairs[*]}"
)"

deploy=(gcloud run deploy "$service" --region="$region" "${p[@]}")
if [[ -n $image ]]; then
  deploy+=(--image="$image")
else
  repo_root=$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)
  [[ -f $repo_root/Dockerfile ]] ||
    warn "no Dockerfile in $repo_root: Cloud Build's buildpacks do not build this Rust workspace; add one or pass --image"
  deploy+=(--source="$repo_root")
fi
deploy+=(
  --service-account="$sa_email"
  --update-env-vars="$env_arg"
  # Several instances share one PostgreSQL journal safely (dedupe, queue claims and the token
  # lease live there), so there is no --max-instances: Cloud Run scales as it needs. Note that
  # ORDER_RATE_LIMITS then applies per instance.
  --min-instances=1            # the token keeper and the queue run in the background
  --no-cpu-throttling          # ... so the CPU must stay allocated between requests
  --timeout=60                 # TradingView gives up after a few seconds anyway
  --port=8080
  --cpu=1
  --memory=512Mi
  --execution-environment=gen2
  --allow-unauthenticated      # TradingView cannot send credentials; WEBHOOK_SECRET guards /webhook
  --network="$network"         # Direct VPC egress: every outgoing packet leaves via Cloud NAT,
  --subnet="$subnet"           # i.e. from the reserved static IP Dhan whitelists
  --vpc-egress=all-traffic
)
if ((${#secret_refs[@]})); then
  deploy+=("--update-secrets=$(
    IFS=,
    printf '%s' "${secret_refs[*]}"
  )")
fi
case $journal in
  cloudsql) deploy+=(--add-cloudsql-instances="$cloudsql_connection") ;;
  ephemeral) deploy+=(--max-instances=1) ;; # one instance, one journal
esac
run "${deploy[@]}"

url=$(query 'https://SERVICE-URL.a.run.app' gcloud run services describe "$service" --region="$region" \
  --format='value(status.url)' "${p[@]}")

cat <<EOF

== done
Service URL:          $url
TradingView webhook:  $url/webhook

Whitelist the static egress IP at Dhan, or every order is rejected:
  $egress_ip
  web.dhan.co > My Profile > DhanHQ Trading APIs > Static IP: set it as the PRIMARY IP.
  (Dhan does not let you change it again for 7 days.)

Verify:
  curl $url/health     # {"status":"healthy"}
  curl $url/ready      # "access_token": "valid" once Dhan accepted the token
  gcloud beta run services logs tail $service --region=$region --project=$project
EOF
