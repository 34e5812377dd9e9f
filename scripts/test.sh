#!/usr/bin/env bash
# The one test command: installs what the tests need, then runs them all.
#   scripts/test.sh
# Needs: Debian/Ubuntu (apt-get) for system packages, python3 with venv, cargo.
set -euo pipefail
cd "$(dirname "$0")/.."

need_apt=()
# Installed, not merely known to dpkg (a removed package keeps its config).
installed() { for p in "$@"; do [ "$(dpkg-query -W -f='${Status}' "$p" 2>/dev/null)" = "install ok installed" ] || return 1; done; }
command -v cc >/dev/null || need_apt+=(gcc libc6-dev)           # the bundled SQLite and mimalloc are C
command -v python3 >/dev/null || need_apt+=(python3)
python3 -c 'import venv, ensurepip' 2>/dev/null || need_apt+=(python3-venv)
command -v node >/dev/null && command -v npm >/dev/null || need_apt+=(nodejs npm)
command -v promtool >/dev/null || need_apt+=(prometheus)        # promtool check metrics/rules
command -v systemd-analyze >/dev/null || need_apt+=(systemd)    # systemd-analyze verify
[ -x /usr/sbin/slapd ] || need_apt+=(slapd)                      # a real OpenLDAP per test
command -v ldapmodify >/dev/null || need_apt+=(ldap-utils)
command -v openssl >/dev/null || need_apt+=(openssl)              # the test CAs
installed adduser || need_apt+=(adduser)                          # the .deb depends on it
[ -x /usr/sbin/dscreate ] || need_apt+=(389-ds-base)              # a real 389 Directory Server per test
command -v java >/dev/null || need_apt+=(openjdk-17-jre-headless)  # a real Keycloak (runs on Java 17)
command -v mvn >/dev/null || need_apt+=(maven)                     # fetches Keycloak from Maven Central
command -v unzip >/dev/null || need_apt+=(unzip)
# A real headless browser for the admin page's tests (driven over WebDriver),
# and a font with Chinese glyphs for its screenshots.
command -v chromium >/dev/null || need_apt+=(chromium)
command -v chromedriver >/dev/null || need_apt+=(chromium-driver)
installed fonts-wqy-microhei || need_apt+=(fonts-wqy-microhei)
# A real Samba AD DC per test run. Provisioning needs three packages samba
# only recommends (we install without recommends): the AD provisioning
# scripts, the DSDB modules, and the VFS modules (acl_xattr.so).
samba_pkgs=(samba samba-ad-provision samba-dsdb-modules samba-vfs-modules)
installed "${samba_pkgs[@]}" || need_apt+=("${samba_pkgs[@]}")
if [ ${#need_apt[@]} -gt 0 ]; then
  SUDO=""; [ "$(id -u)" = 0 ] || SUDO="sudo"
  $SUDO apt-get update -q
  DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -q --no-install-recommends "${need_apt[@]}"
fi

# The real SCIM 2.0 servers the tests talk to, in a local venv: scim2-server,
# django-scim2 and django-scim2-server (both served by tests/servers/django_scim).
if [ ! -x .venv-scim/bin/scim2-server ] || ! .venv-scim/bin/python -c 'import django_scim, django_scim2_server' 2>/dev/null; then
  python3 -m venv .venv-scim
  .venv-scim/bin/pip install -q "scim2-server>=0.8,<0.9" "django-scim2==0.23.0" "django-scim2-server==1.1.0" "Django>=5.2,<5.3"
fi
.venv-scim/bin/scim2-server --help >/dev/null || { echo "scim2-server is not runnable" >&2; exit 1; }
export SCIM2_SERVER="$PWD/.venv-scim/bin/scim2-server" SCIM_PYTHON="$PWD/.venv-scim/bin/python"

# SCIMMY (Node): pinned by tests/servers/scimmy/package-lock.json, into that folder.
if [ ! -d tests/servers/scimmy/node_modules/scimmy-routers ]; then
  (cd tests/servers/scimmy && npm ci --no-audit --no-fund --loglevel=error)
fi
export PROMTOOL="$(command -v promtool)" SYSTEMD_ANALYZE="$(command -v systemd-analyze)"
export CHROMIUM="$(command -v chromium)" CHROMEDRIVER="$(command -v chromedriver)"

# Keycloak's server distribution from Maven Central (cached in ~/.m2),
# unpacked into .keycloak/; tests/it/keycloak.rs starts it once per run.
KEYCLOAK_VERSION=25.0.6   # the last line that runs on Java 17
if [ ! -x ".keycloak/keycloak-$KEYCLOAK_VERSION/bin/kc.sh" ]; then
  mvn -q -B dependency:copy -Dartifact="org.keycloak:keycloak-quarkus-dist:$KEYCLOAK_VERSION:zip" -DoutputDirectory=.keycloak
  (cd .keycloak && unzip -q "keycloak-quarkus-dist-$KEYCLOAK_VERSION.zip" && rm "keycloak-quarkus-dist-$KEYCLOAK_VERSION.zip")
fi
export KEYCLOAK_HOME="$PWD/.keycloak/keycloak-$KEYCLOAK_VERSION"

# Hygiene first: formatting and lints fail the command.
cargo fmt --version >/dev/null 2>&1 || { echo "rustfmt is missing: rustup component add rustfmt" >&2; exit 1; }
cargo clippy --version >/dev/null 2>&1 || { echo "clippy is missing: rustup component add clippy" >&2; exit 1; }
cargo fmt --check
cargo clippy --all-targets --locked -- -D warnings
cargo build --all-targets --locked

# The packages, made as README says but from the debug build the tests use:
# a test installs the .deb and purges it, another reads the .rpm. What they
# test is the packaging (files, unit, scripts, config); a release build would
# add ten minutes of building to this command. The binary is stripped first
# (it runs the same; packing 280 MB of debug info takes minutes).
# The packaging tools live in ~/.cargo/bin, so later runs reuse them.
export PATH="${CARGO_HOME:-$HOME/.cargo}/bin:$PATH"
command -v cargo-deb >/dev/null || cargo install --locked --quiet cargo-deb
command -v cargo-generate-rpm >/dev/null || cargo install --locked --quiet cargo-generate-rpm
rm -rf target/debian target/generate-rpm
strip target/debug/orgsync
cargo deb --no-build --profile dev --quiet
cargo generate-rpm --profile dev
ORGSYNC_DEB="$(ls "$PWD"/target/debian/orgsync_*.deb)"
ORGSYNC_RPM="$(ls "$PWD"/target/generate-rpm/orgsync-*.rpm)"
export ORGSYNC_DEB ORGSYNC_RPM

cargo test --locked -- --test-threads "${TEST_THREADS:-4}"
