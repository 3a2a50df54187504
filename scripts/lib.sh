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

install_test_deps() {
  apt_install busybox-static umoci skopeo ca-certificates python3 python3-venv jq
  cargo_install cargo-nextest cargo-nextest
}
