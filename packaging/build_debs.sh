#!/bin/bash
# Builds the two Debian packages from Bazel's outputs (run by
# //packaging:debs; tools/package is the entry point for people):
#
#   build_debs.sh NICHANDOVERD NICCTL VERSION_H PACKAGING_DIR MAIN_DEB DKMS_DEB KMOD_FILES...
#
# nichandover       nichandoverd, nicctl, bash completion, man pages (nicctl's
#                   generated from its command table), the systemd unit, an
#                   example configuration
# nichandover-dkms  the hook module's sources with a dkms.conf
#
# dpkg-shlibdeps computes the shared-library dependencies; dpkg-deb builds
# the archives (owner root, reproducible timestamps).
set -euo pipefail

daemon=$1 nicctl=$2 version_h=$3 pkgdir=$4 main_deb=$5 dkms_deb=$6
shift 6
kmod_files=("$@")

version=$(sed -n 's/.*kVersion\[\] = "\(.*\)";/\1/p' "$version_h")
[ -n "$version" ] || { echo "build_debs: no kVersion in $version_h" >&2; exit 1; }
debversion="$version-1"
arch=$(dpkg --print-architecture)
export SOURCE_DATE_EPOCH=${SOURCE_DATE_EPOCH:-1796083200}  # 2026-12-01

work=$(mktemp -d "${TMPDIR:-/tmp}/nh-package.XXXXXX")
trap 'rm -rf "$work"' EXIT

subst() {
  sed -e "s/@VERSION@/$version/g" -e "s/@DEBVERSION@/$debversion/g" "$1"
}

# Files a Debian package must carry in /usr/share/doc/PACKAGE.
docs() {
  local root=$1 name=$2
  install -d "$root/usr/share/doc/$name"
  install -m 0644 "$pkgdir/copyright" "$root/usr/share/doc/$name/copyright"
  subst "$pkgdir/changelog.in" | sed "1s/^nichandover /$name /" | gzip -9n \
    >"$root/usr/share/doc/$name/changelog.Debian.gz"
}

# Normalized permissions and times, then the archive with md5sums.
finish() {
  local root=$1 out=$2
  (cd "$root" && find . -path ./DEBIAN -prune -o -type f -printf '%P\0' | sort -z |
    xargs -0 -r md5sum) >"$root/DEBIAN/md5sums"
  [ -s "$root/DEBIAN/md5sums" ] || rm "$root/DEBIAN/md5sums"
  find "$root" -type d -exec chmod 0755 {} +
  find "$root" -exec touch -h -d "@$SOURCE_DATE_EPOCH" {} +
  dpkg-deb --root-owner-group -Zxz --build "$root" "$out" >/dev/null
}

# ---------------------------------------------------------------- nichandover
root=$work/nichandover
install -d "$root/DEBIAN" "$root/usr/sbin" "$root/usr/bin" "$root/lib/systemd/system" \
  "$root/usr/share/man/man1" "$root/usr/share/man/man8" \
  "$root/usr/share/bash-completion/completions" "$root/usr/share/doc/nichandover/examples"
install -m 0755 "$daemon" "$root/usr/sbin/nichandoverd"
install -m 0755 "$nicctl" "$root/usr/bin/nicctl"
strip --strip-unneeded --remove-section=.comment --remove-section=.note \
  "$root/usr/sbin/nichandoverd" "$root/usr/bin/nicctl"
"$nicctl" completion bash >"$root/usr/share/bash-completion/completions/nicctl"
"$nicctl" help --man | gzip -9n >"$root/usr/share/man/man1/nicctl.1.gz"
gzip -9n <"$pkgdir/nichandoverd.8" >"$root/usr/share/man/man8/nichandoverd.8.gz"
install -m 0644 "$pkgdir/nichandoverd.service" "$root/lib/systemd/system/"
install -m 0644 "$pkgdir/nichandoverd.conf.example" \
  "$root/usr/share/doc/nichandover/examples/nichandoverd.conf"
docs "$root" nichandover
for script in postinst prerm postrm; do
  install -m 0755 "$pkgdir/nichandover.$script" "$root/DEBIAN/$script"
done

# dpkg-shlibdeps wants a source package's layout around it.
mkdir -p "$work/src/debian"
printf 'Source: nichandover\n\nPackage: nichandover\nArchitecture: any\n' \
  >"$work/src/debian/control"
shlibs=$(cd "$work/src" && dpkg-shlibdeps -O -e"$root/usr/sbin/nichandoverd" \
  -e"$root/usr/bin/nicctl" 2>/dev/null | sed -n 's/^shlibs:Depends=//p')
[ -n "$shlibs" ] || { echo "build_debs: dpkg-shlibdeps found no dependencies" >&2; exit 1; }
size=$(du -sk --exclude=DEBIAN "$root" | cut -f1)
cat >"$root/DEBIAN/control" <<CONTROL
Package: nichandover
Version: $debversion
Architecture: $arch
Maintainer: nichandover maintainers <maintainers@nichandover.org>
Installed-Size: $size
Depends: $shlibs, adduser
Recommends: nichandover-dkms
Section: net
Priority: optional
Description: hand running PCI NICs over between the OS nodes of one machine
 nichandover moves a running network card from one OS node (kernel) to
 another on the same machine: multi-kernel systems, partitioning
 hypervisors, VMs. The source quiesces the NIC, its interrupts are
 rerouted and the target attaches it, with every step journaled.
 .
 This package holds the per-node daemon nichandoverd (a systemd unit,
 with Prometheus metrics) and its command-line client nicctl.
CONTROL
finish "$root" "$main_deb"

# ------------------------------------------------------------ nichandover-dkms
root=$work/nichandover-dkms
src=$root/usr/src/nichandover-$version
install -d "$root/DEBIAN" "$src"
for f in "${kmod_files[@]}"; do install -m 0644 "$f" "$src/"; done
subst "$pkgdir/dkms.conf.in" >"$src/dkms.conf"
docs "$root" nichandover-dkms
for script in postinst prerm; do
  subst "$pkgdir/nichandover-dkms.$script" >"$root/DEBIAN/$script"
  chmod 0755 "$root/DEBIAN/$script"
done
size=$(du -sk --exclude=DEBIAN "$root" | cut -f1)
cat >"$root/DEBIAN/control" <<CONTROL
Package: nichandover-dkms
Version: $debversion
Architecture: all
Maintainer: nichandover maintainers <maintainers@nichandover.org>
Installed-Size: $size
Depends: dkms (>= 2.1.0.0)
Recommends: linux-headers-amd64 | linux-headers-generic
Section: kernel
Priority: optional
Description: nichandover's kernel hook module, built by DKMS
 The nichandover_hook module gates a NIC's data path for a handover
 (transmit at dev_hard_start_xmit, NAPI polls) and rewrites its MSI/MSI-X
 messages, on the command of nichandoverd over generic netlink.
 .
 DKMS rebuilds it for every kernel installed with its headers.
CONTROL
finish "$root" "$dkms_deb"
