M=$1 B=$2; shift 2
NL='
'
exec 3>&1
priv() { if [ "$B" = sudo ]; then sudo -n -- "$@"; else "$@"; fi; }
sec() {
  n=$1; shift
  printf '%s out %s\n' "$M" "$n"
  e=$( { ( "$@" ) 2>&1 1>&3 3>&-; s=$?; printf '\n%s exit %s %s\n' "$M" "$n" "$s" >&3; printf '\n%s' "$s"; } )
  x=${e##*"$NL"}; e=${e%"$NL"*}
  printf '%s err %s\n%s\n%s end %s\n' "$M" "$n" "$e" "$M" "$n"
  return "$x"
}
FIND_BIN_DIR='b=$1; shift; for d in "$@"; do if [ -x "$d/$b" ]; then echo "$d"; exit 0; fi; done'
SHA256='if [ -f "$1" ]; then sha256sum "$1"; fi'
FREE_KB='df -Pk "$1" | tail -n 1'
PACKAGE_OWNER='if command -v rpm >/dev/null 2>&1 && o=$(rpm -qf "$1" 2>/dev/null); then echo "rpm $o"; elif command -v dpkg >/dev/null 2>&1 && o=$(dpkg -S "$1" 2>/dev/null); then echo "dpkg $o"; fi'
SKIPPED_MANIFESTS='if [ -d "$1" ]; then cd "$1" && find . -type f -name "*.skip" | sed "s|^\./||"; fi'
IMAGE_DIR='for f in "$1"/*; do if [ -f "$f" ]; then printf '\''%s %s\n'\'' "$(ls -ln -- "$f" | awk '\''{print $5}'\'')" "${f##*/}"; fi; done'
FREE_KB_NEAREST='d=$1; while [ ! -d "$d" ]; do d=$(dirname -- "$d"); done; df -Pk "$d" | tail -n 1'
REGISTRIES_CAT='if [ -f "$1" ]; then cat -- "$1"; fi'
BIN=$1 EXPLICIT=$2 FALLBACK=$3 SERVICE=$4 MANIFESTS=$5 MANAGERS=$6 IMAGES=$7 REGISTRIES=$8; shift 8
if [ "$B" = sudo ]; then sec sudo priv true || exit 0; fi
if [ -n "$EXPLICIT" ]; then D=$EXPLICIT; else D=$(sh -c "$FIND_BIN_DIR" homelab "$BIN" "$@" 2>/dev/null); [ -n "$D" ] || D=$FALLBACK; fi
sec bindir printf '%s' "$D"
sec sha256 sh -c "$SHA256" homelab "$D/$BIN"
sec version "$D/$BIN" --version
sec arch uname -m
if [ -n "$MANAGERS" ]; then sec service sh -c "$MANAGERS" homelab "$SERVICE"; fi
sec free-bin sh -c "$FREE_KB" homelab "$D"
sec free-tmp sh -c "$FREE_KB" homelab /tmp
sec owner sh -c "$PACKAGE_OWNER" homelab "$D/$BIN"
if [ -n "$MANIFESTS" ]; then sec skip priv sh -c "$SKIPPED_MANIFESTS" homelab "$MANIFESTS"; fi
if [ -n "$IMAGES" ]; then
  sec images priv sh -c "$IMAGE_DIR" homelab "$IMAGES"
  sec free-images sh -c "$FREE_KB_NEAREST" homelab "$IMAGES"
  sec registries priv sh -c "$REGISTRIES_CAT" homelab "$REGISTRIES"
fi
