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
DETECT_PM='if command -v apt-get >/dev/null 2>&1 && command -v dpkg-query >/dev/null 2>&1; then echo apt; elif command -v dnf >/dev/null 2>&1; then echo dnf; fi'
APT_INSTALLED='for p; do v=$(dpkg-query -W -f='\''${Version}'\'' "$p" 2>/dev/null) || v=; printf '\''%s\t%s\n'\'' "$p" "$v"; done'
DNF_INSTALLED='for p; do v=$(rpm -q --qf '\''%{VERSION}-%{RELEASE}'\'' "$p" 2>/dev/null) || v=; printf '\''%s\t%s\n'\'' "$p" "$v"; done'
FIND_APT_SOURCE='d=$1; shift; for n; do [ -f "$d/$n" ] && grep -qE "/v[0-9]+\.[0-9]+/" "$d/$n" && { echo "$d/$n"; exit 0; }; done; for f in "$d"/*.list "$d"/*.sources; do [ -f "$f" ] && grep -qE "core:/stable:/v[0-9]+\.[0-9]+/" "$f" && { echo "$f"; exit 0; }; done; true'
SWAP='swapon --show --noheadings 2>/dev/null || true'
FREE_KB='df -Pk "$1"'
CONTROL_PLANE_FACTS='[ -f "$1" ] && echo admin; [ -f "$2" ] && echo etcd; command -v etcdctl >/dev/null 2>&1 && echo etcdctl; command -v crictl >/dev/null 2>&1 && echo crictl; true'
APT_OFFERED='t=$(mktemp -d) || exit 1; trap '\''rm -rf "$t"'\'' EXIT; mkdir -p "$t/lists/partial" "$t/parts" "$t/cache/archives/partial"
printf '\''%s'\'' "$1" > "$t/parts/$2"
o="-o Dir::Etc::sourcelist=$t/none.list -o Dir::Etc::sourceparts=$t/parts -o Dir::State::Lists=$t/lists -o Dir::Cache=$t/cache"
apt-get $o update -qq >/dev/null 2>"$t/err" || { cat "$t/err" >&2; exit 100; }
apt-cache $o madison "$3"'
DNF_OFFERED='t=$(mktemp -d) || exit 1; trap '\''rm -rf "$t"'\'' EXIT; mkdir -p "$t/repos" "$t/cache"
printf '\''%s'\'' "$1" > "$t/repos/$2"
dnf -q list --showduplicates --disableexcludes=all --setopt=reposdir="$t/repos" --setopt=cachedir="$t/cache" "$3"'
UP=$1 PKGS=$2 EXPLICIT=$3 APT_NAMES=$4 BINDIR=$5 CACHE=$6 TO=$7 ADMIN=$8 ETCD=$9
keep() { r=$(exec 3>&1; sec "$@"); s=$?; printf '%s\n' "$r"; K=${r#*"$M out $1$NL"}; K=${K%"$NL$M exit $1 "*}; return $s; }
if [ "$B" = sudo ]; then sec sudo priv true || exit 0; fi
sec arch uname -m
keep manager snip "$DETECT_PM"
PM=$(printf '%s' "$K" | tr -d '[:space:]')
case $PM in apt) INSTALLED=$APT_INSTALLED ;; dnf) INSTALLED=$DNF_INSTALLED ;; *) INSTALLED= ;; esac
if [ -n "$INSTALLED" ]; then
  set -f; IFS=$NL
  keep installed snip "$INSTALLED" $PKGS
  set +f; unset IFS
  KV=$(printf '%s\n' "$K" | awk -F '\t' -v p="$UP" '$1 == p { print $2 }')
fi
[ "$PM" = apt ] && sec held apt-mark showhold
F=
if [ -n "$EXPLICIT" ]; then F=$EXPLICIT
elif [ "$PM" = apt ]; then
  keep apt-config apt-config shell D Dir::Etc::sourceparts/d
  d=$(printf '%s\n' "$K" | sed -n "s/^[^']*'\\(.*\\)'.*$/\\1/p" | sed 's#/*$##')
  if [ -n "$d" ]; then
    set -f; IFS=$NL
    keep apt-source sh -c "$FIND_APT_SOURCE" homelab "$d" $APT_NAMES
    set +f; unset IFS
    F=$(printf '%s\n' "$K" | sed -n 1p)
  fi
elif [ "$PM" = dnf ]; then
  keep repolist dnf -v repolist --enabled
  F=$(printf '%s\n' "$K" | awk '
    function pick() { if (f != "" && b ~ /\/v[0-9]+\.[0-9]+\//) { print f; exit } }
    /^Repo-id[ \t]*:/ { pick(); b = ""; f = "" }
    /^Repo-baseurl[ \t]*:/ { sub(/^Repo-baseurl[ \t]*:[ \t]*/, ""); b = $1 }
    /^Repo-filename[ \t]*:/ { sub(/^Repo-filename[ \t]*:[ \t]*/, ""); f = $1 }
    END { pick() }')
fi
sec swap snip "$SWAP"
sec free-bin snip "$FREE_KB" "$BINDIR"
sec free-cache snip "$FREE_KB" "$CACHE"
if [ -n "$ADMIN" ]; then sec control-plane priv sh -c "$CONTROL_PLANE_FACTS" homelab "$ADMIN" "$ETCD"; fi
[ -n "$F" ] || exit 0
keep repository priv cat "$F" || exit 0
TEXT=$K
FROM=$(printf '%s\n' "$KV" | sed -n 's/^v\{0,1\}\([0-9][0-9]*\.[0-9][0-9]*\).*/\1/p')
[ -n "$FROM" ] || exit 0
if [ "$FROM" = "$TO" ]; then AFTER=$TEXT
else
  RE=$(printf '%s' "$FROM" | sed 's/\./\\./g')
  printf '%s' "$TEXT" | grep -q "/v$RE/" || exit 0
  AFTER=$(printf '%s' "$TEXT" | sed "s#/v$RE/#/v$TO/#g"; printf .); AFTER=${AFTER%.}
fi
case $PM in apt) OFFERED=$APT_OFFERED ;; dnf) OFFERED=$DNF_OFFERED ;; esac
sec switched printf '%s' "$AFTER"
sec offered sh -c "$OFFERED" homelab "$AFTER" "${F##*/}" "$UP"
