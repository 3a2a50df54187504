# Shared helpers of berth's scripts: idempotent installation of what they need.

apt_install() {
  local missing=()
  for pkg in "$@"; do
    dpkg-query -W -f='${Status}' "$pkg" 2>/dev/null | grep -q "install ok installed" || missing+=("$pkg")
  done
  if [ ${#missing[@]} -gt 0 ]; then
    echo "== installing Debian packages: ${missing[*]}"
    export DEBIAN_FRONTEND=noninteractive
    apt-get update -qq
    apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
  fi
}

cargo_install() { # cargo_install BINARY CRATE
  if ! command -v "$1" >/dev/null 2>&1 && ! cargo "${1#cargo-}" --version >/dev/null 2>&1; then
    echo "== installing $2"
    cargo install --locked "$2"
  fi
}

# kubernetes-validate (PyPI) in its own venv, to check that manifests berth accepts are valid
# Kubernetes too (api/tests/accepted.rs). Exports BERTH_KUBERNETES_VALIDATE for the tests.
KUBERNETES_VALIDATE_VERSION=1.37.0
install_kubernetes_validate() {
  local venv="${XDG_CACHE_HOME:-$HOME/.cache}/berth/venv"
  local bin="$venv/bin/kubernetes-validate"
  if ! "$bin" --version 2>/dev/null | grep -qx "$KUBERNETES_VALIDATE_VERSION"; then
    echo "== installing kubernetes-validate $KUBERNETES_VALIDATE_VERSION into $venv"
    python3 -m venv "$venv"
    "$venv/bin/pip" install --quiet --disable-pip-version-check "kubernetes-validate==$KUBERNETES_VALIDATE_VERSION"
  fi
  export BERTH_KUBERNETES_VALIDATE="$bin"
}

# Path of the berth executable cargo builds in PROFILE (release, debug): the workspace builds for
# the host tuple as an explicit target (.cargo/config.toml), so artifacts live below
# target/<host tuple>/.
berth_bin() { # berth_bin PROFILE
  local host
  host=$(rustc -vV | sed -n 's/^host: //p')
  echo "${CARGO_TARGET_DIR:-$PWD/target}/$host/$1/berth"
}

install_test_deps() {
  apt_install busybox-static umoci skopeo ca-certificates python3 python3-venv jq prometheus
  cargo_install cargo-nextest cargo-nextest
  install_kubernetes_validate
}
