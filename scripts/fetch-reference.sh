#!/bin/bash
# Sets up what the differential tests compare against, once, in a cache directory:
#   kmod/bin/{kmod,modinfo,modprobe,depmod,insmod,rmmod,lsmod}  reference kmod 34.2
#       (Debian trixie's build, run through its own dynamic loader on this machine)
#   trees/NAME/{pristine,ref,KVER}  real Debian module trees; ref/ holds the indexes
#       reference depmod wrote, pristine/ the package contents untouched.
#       NAME: trixie-amd64 (.ko.xz), trixie-cloud (.ko.xz, ~1150 modules),
#             bookworm-amd64 (plain .ko); pristine/boot holds each kernel image
#   kbuild/bin/sign-file  the kernel's module signing tool from Debian's linux-kbuild
#       package of the trixie-amd64 kernel, run like reference kmod (its libcrypto
#       comes with it)
# Usage: scripts/fetch-reference.sh [DIR]   (default: $KMOD_REFERENCE, else
#        ${XDG_CACHE_HOME:-~/.cache}/kmod-reference). Prints DIR on its last line.
# Needs apt-get and dpkg-deb; about 250 MB of downloads the first time.
set -euo pipefail
DIR=${1:-${KMOD_REFERENCE:-${XDG_CACHE_HOME:-$HOME/.cache}/kmod-reference}}
mkdir -p "$DIR"/apt/lists/partial "$DIR"/apt/cache/archives/partial "$DIR"/debs

# Use the archive this machine is already configured for; no address is written here.
archive=$(awk '/^URIs:/ && $2 !~ /security/ {print $2; exit}' /etc/apt/sources.list.d/*.sources 2>/dev/null || true)
[ -n "$archive" ] || archive=$(awk '$1 == "deb" && $0 !~ /security/ { for (i = 2; i <= NF; i++) if ($i ~ /^https?:/) { print $i; exit } }' /etc/apt/sources.list 2>/dev/null || true)
[ -n "$archive" ] || { echo "fetch-reference: no Debian archive configured in /etc/apt" >&2; exit 1; }
security=$(awk '/^URIs:/ && $2 ~ /security/ {print $2; exit}' /etc/apt/sources.list.d/*.sources 2>/dev/null || true)
[ -n "$security" ] || security=${archive%/debian}/debian-security
keyring=/usr/share/keyrings/debian-archive-keyring.gpg
cat > "$DIR/apt/sources.list" <<SRC
deb [arch=amd64 signed-by=$keyring] $archive trixie main
deb [arch=amd64 signed-by=$keyring] $security bookworm-security main
SRC
APT=(-o "Dir::Etc::SourceList=$DIR/apt/sources.list" -o Dir::Etc::SourceParts=/nonexistent
     -o "Dir::State::Lists=$DIR/apt/lists" -o "Dir::Cache=$DIR/apt/cache"
     -o Debug::NoLocking=1 -o APT::Architectures::=amd64 -o APT::Sandbox::User=root)
if [ ! -e "$DIR/apt/.updated" ]; then
  apt-get "${APT[@]}" update -qq
  touch "$DIR/apt/.updated"
fi
cd "$DIR/debs"

if [ ! -x "$DIR/kmod/bin/modinfo" ]; then
  pkgs=(kmod libkmod2 libc6 libssl3t64 libzstd1 liblzma5 zlib1g)
  apt-get "${APT[@]}" download -qq "${pkgs[@]}"
  rm -rf "$DIR/kmod"; mkdir -p "$DIR/kmod/root" "$DIR/kmod/bin"
  for p in "${pkgs[@]}"; do dpkg-deb -x "$(ls "${p}"_*_amd64.deb | head -1)" "$DIR/kmod/root"; done
  libs=$DIR/kmod/root/usr/lib/x86_64-linux-gnu
  for tool in kmod modinfo depmod modprobe insmod rmmod lsmod; do
    cat > "$DIR/kmod/bin/$tool" <<WRAP
#!/bin/sh
exec $libs/ld-linux-x86-64.so.2 --library-path $libs --argv0 $tool $DIR/kmod/root/usr/bin/kmod "\$@"
WRAP
    chmod +x "$DIR/kmod/bin/$tool"
  done
fi
"$DIR/kmod/bin/kmod" --version | head -1 >&2

# tree NAME METAPACKAGE VERSION-REGEX: the kernel image package the metapackage of that
# version depends on, unpacked, and a copy with reference depmod's output.
tree() {
  local name=$1 meta=$2 pattern=$3 pkg deb kver
  [ -f "$DIR/trees/$name/KVER" ] && return 0
  pkg=$(apt-cache "${APT[@]}" show "$meta" | awk -v want="$pattern" '
    /^Version:/ { v = $2 }
    /^Depends:/ && v ~ want { match($0, /linux-image-[0-9][^ ,]*/); print substr($0, RSTART, RLENGTH); exit }')
  [ -n "$pkg" ] || { echo "fetch-reference: no $meta matching $pattern" >&2; exit 1; }
  apt-get "${APT[@]}" download -qq "$pkg"
  deb=$(ls "${pkg}"_*_amd64.deb | head -1)
  rm -rf "$DIR/trees/$name"
  mkdir -p "$DIR/trees/$name/pristine"
  dpkg-deb -x "$deb" "$DIR/trees/$name/pristine"
  # Reference depmod looks under ROOT/lib/modules; merged-/usr packages ship /usr/lib.
  [ -e "$DIR/trees/$name/pristine/lib" ] || ln -s usr/lib "$DIR/trees/$name/pristine/lib"
  kver=$(ls "$DIR/trees/$name/pristine/lib/modules")
  cp -a "$DIR/trees/$name/pristine" "$DIR/trees/$name/ref"
  "$DIR/kmod/bin/depmod" -b "$DIR/trees/$name/ref" "$kver"
  echo "$kver" > "$DIR/trees/$name/KVER"
  echo "tree $name: $kver, $(find "$DIR/trees/$name/pristine/" -name '*.ko*' | wc -l) modules" >&2
}
tree trixie-amd64 linux-image-amd64 '^6\.12'
tree trixie-cloud linux-image-cloud-amd64 '^6\.12'
tree bookworm-amd64 linux-image-amd64 '^6\.1\.'

if [ ! -x "$DIR/kbuild/bin/sign-file" ]; then
  kver=$(cat "$DIR/trees/trixie-amd64/KVER")
  pkg=linux-kbuild-${kver%-amd64}
  apt-get "${APT[@]}" download -qq "$pkg"
  rm -rf "$DIR/kbuild"; mkdir -p "$DIR/kbuild/root" "$DIR/kbuild/bin"
  dpkg-deb -x "$(ls "${pkg}"_*_amd64.deb | head -1)" "$DIR/kbuild/root"
  signfile=$(find "$DIR/kbuild/root" -path '*/scripts/sign-file' -type f | head -1)
  [ -n "$signfile" ] || { echo "fetch-reference: no sign-file in $pkg" >&2; exit 1; }
  libs=$DIR/kmod/root/usr/lib/x86_64-linux-gnu
  # No OpenSSL configuration of this machine's: the defaults are what sign-file gets
  # in a kernel build.
  cat > "$DIR/kbuild/bin/sign-file" <<WRAP
#!/bin/sh
OPENSSL_CONF=/dev/null exec $libs/ld-linux-x86-64.so.2 --library-path $libs $signfile "\$@"
WRAP
  chmod +x "$DIR/kbuild/bin/sign-file"
  echo "sign-file: $pkg" >&2
fi
echo "$DIR"
