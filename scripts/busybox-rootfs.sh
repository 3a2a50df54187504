#!/usr/bin/env bash
# busybox-rootfs.sh DIR: lay out a minimal root filesystem from Debian's busybox-static in DIR
# (bin/busybox, one symlink per applet, /etc/passwd and /etc/group, a web root), the base of the
# test and demo images. Needs no registry.
set -euo pipefail
dir=${1:?usage: busybox-rootfs.sh DIR}
bb=/bin/busybox
[ -x "$bb" ] && "$bb" --list >/dev/null 2>&1 || { echo "busybox-static is not installed (apt-get install busybox-static)" >&2; exit 1; }
mkdir -p "$dir"/{bin,etc,tmp,proc,sys,dev,root,var/www,home}
chmod 1777 "$dir/tmp"
cp "$bb" "$dir/bin/busybox"
for applet in $("$bb" --list); do
  [ "$applet" = busybox ] || ln -sf busybox "$dir/bin/$applet"
done
cat > "$dir/etc/passwd" <<'PW'
root:x:0:0:root:/root:/bin/sh
nobody:x:65534:65534:nobody:/home:/bin/false
www:x:33:33:www:/var/www:/bin/false
PW
cat > "$dir/etc/group" <<'GR'
root:x:0:
www:x:33:
nogroup:x:65534:
GR
echo '<h1>hello from berth</h1>' > "$dir/var/www/index.html"
