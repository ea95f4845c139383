M=$1 B=$2; shift 2
NL='
'
exec 3>&1
priv() { if [ "$B" = sudo ]; then sudo -n -- "$@"; else "$@"; fi; }
snip() { __p=$1; shift; eval "$__p"; }
sec() {
  n=$1; shift
  printf '%s out %s\n' "$M" "$n"
  e=$( { "$@" 2>&1 1>&3 3>&-; s=$?; printf '\n%s exit %s %s\n' "$M" "$n" "$s" >&3; printf '\n%s' "$s"; } )
  x=${e##*"$NL"}; e=${e%"$NL"*}
  printf '%s err %s\n%s\n%s end %s\n' "$M" "$n" "$e" "$M" "$n"
  return "$x"
}
FIND_BIN_DIR='b=$1; shift; for d in "$@"; do if [ -x "$d/$b" ]; then echo "$d"; break; fi; done'
SHA256='if [ -f "$1" ]; then sha256sum "$1"; fi'
FREE_KB='df -Pk "$1"'
PACKAGE_OWNER='if command -v rpm >/dev/null 2>&1 && o=$(rpm -qf "$1" 2>/dev/null); then echo "rpm $o"; elif command -v dpkg >/dev/null 2>&1 && o=$(dpkg -S "$1" 2>/dev/null); then echo "dpkg $o"; fi'
FREE_KB_NEAREST='d=$1; while [ ! -d "$d" ]; do case $d in */*) d=${d%/*}; d=${d:-/} ;; *) d=. ;; esac; done; df -Pk "$d"'
AS_ROOT='M=$1 B=$2; shift 2
NL='\''
'\''
exec 3>&1
priv() { if [ "$B" = sudo ]; then sudo -n -- "$@"; else "$@"; fi; }
snip() { __p=$1; shift; eval "$__p"; }
sec() {
  n=$1; shift
  printf '\''%s out %s\n'\'' "$M" "$n"
  e=$( { "$@" 2>&1 1>&3 3>&-; s=$?; printf '\''\n%s exit %s %s\n'\'' "$M" "$n" "$s" >&3; printf '\''\n%s'\'' "$s"; } )
  x=${e##*"$NL"}; e=${e%"$NL"*}
  printf '\''%s err %s\n%s\n%s end %s\n'\'' "$M" "$n" "$e" "$M" "$n"
  return "$x"
}
SKIPPED_MANIFESTS='\''if [ -d "$1" ]; then cd "$1" && find . -type f -name "*.skip" | sed "s|^\./||"; fi'\''
IMAGE_DIR='\''for f in "$1"/*; do if [ -f "$f" ]; then printf '\''\'\'''\''%s %s\n'\''\'\'''\'' "$(ls -ln -- "$f" | awk '\''\'\'''\''{print $5}'\''\'\'''\'')" "${f##*/}"; fi; done'\''
REGISTRIES_CAT='\''if [ -f "$1" ]; then cat -- "$1"; fi'\''
MANIFESTS=$1 IMAGES=$2 REGISTRIES=$3
if [ -n "$MANIFESTS" ]; then sec skip snip "$SKIPPED_MANIFESTS" "$MANIFESTS"; fi
if [ -n "$IMAGES" ]; then
  sec images snip "$IMAGE_DIR" "$IMAGES"
  sec registries snip "$REGISTRIES_CAT" "$REGISTRIES"
fi
exit 0
'
BIN=$1 EXPLICIT=$2 FALLBACK=$3 SERVICE=$4 MANIFESTS=$5 MANAGERS=$6 IMAGES=$7 REGISTRIES=$8; shift 8
if ! sec root priv sh -c "$AS_ROOT" homelab "$M" none "$MANIFESTS" "$IMAGES" "$REGISTRIES" && [ "$B" = sudo ]; then exit 0; fi
if [ -n "$EXPLICIT" ]; then D=$EXPLICIT; else D=$(snip "$FIND_BIN_DIR" "$BIN" "$@" 2>/dev/null); [ -n "$D" ] || D=$FALLBACK; fi
sec bindir printf '%s' "$D"
sec sha256 snip "$SHA256" "$D/$BIN"
sec version "$D/$BIN" --version
sec arch uname -m
if [ -n "$MANAGERS" ]; then sec service snip "$MANAGERS" "$SERVICE"; fi
sec free-bin snip "$FREE_KB" "$D"
sec free-tmp snip "$FREE_KB" /tmp
sec owner snip "$PACKAGE_OWNER" "$D/$BIN"
if [ -n "$IMAGES" ]; then sec free-images snip "$FREE_KB_NEAREST" "$IMAGES"; fi
