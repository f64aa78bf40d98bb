#!/usr/bin/env bash
# Install newsmon as a systemd service: a virtualenv in /opt/newsmon, the unit in
# /etc/systemd/system, a starter watchlist in /etc/newsmon (never overwriting yours) and a
# root-only folder for the credentials the unit loads. Run from a checkout, as root.
#
#   scripts/install.sh              install, then print the next steps
#   scripts/install.sh --dry-run    print what it would do, change nothing
#   DESTDIR=/tmp/stage scripts/install.sh
#                                   install under /tmp/stage (to inspect the layout; a
#                                   virtualenv does not work once moved elsewhere)
#   PREFIX=/srv/newsmon             the virtualenv's place (default /opt/newsmon)
#   PYTHON=python3.12               the interpreter for the virtualenv (3.11 or newer)
set -euo pipefail

SRC="$(cd "$(dirname "$0")/.." && pwd)"
PREFIX="${PREFIX:-/opt/newsmon}"
PYTHON="${PYTHON:-python3}"
DESTDIR="${DESTDIR:-}"
DRY_RUN=0
for arg in "$@"; do
    case "$arg" in
        --dry-run) DRY_RUN=1 ;;
        -h | --help) sed -n '2,/^set -e/p' "$0" | sed '$d; s/^# \{0,1\}//'; exit 0 ;;
        *) echo "install.sh: unknown option $arg (try --help)" >&2; exit 2 ;;
    esac
done

CONF="$DESTDIR/etc/newsmon"
UNIT="$DESTDIR/etc/systemd/system/newsmon.service"

run() {
    echo "+ $*"
    if [ "$DRY_RUN" = 0 ]; then "$@"; fi
}

# The virtualenv, with newsmon and its dependencies from this checkout.
run "$PYTHON" -m venv "$DESTDIR$PREFIX"
run "$DESTDIR$PREFIX/bin/pip" install --quiet --upgrade "$SRC"

# The unit, pointed at this PREFIX.
run install -d -m 0755 "$(dirname "$UNIT")"
echo "+ sed 's|/opt/newsmon/|$PREFIX/|' $SRC/systemd/newsmon.service > $UNIT"
if [ "$DRY_RUN" = 0 ]; then
    sed "s|/opt/newsmon/|$PREFIX/|" "$SRC/systemd/newsmon.service" > "$UNIT"
    chmod 0644 "$UNIT"
fi

# The watchlist is yours once installed: only a first install writes one.
run install -d -m 0755 "$CONF"
if [ -e "$CONF/newsmon.toml" ]; then
    echo "keeping the existing $CONF/newsmon.toml"
else
    run install -m 0644 "$SRC/config.example.toml" "$CONF/newsmon.toml"
fi
# Secrets: root-only files, handed to the service by LoadCredential=.
run install -d -m 0700 "$CONF/credentials"

# systemd reads the new unit (a dry run shows the step it would take there too)
if [ -z "$DESTDIR" ] && [ -d /run/systemd/system ]; then
    run systemctl daemon-reload
fi

# The unit's IPAddressDeny= blocks private addresses; a resolver there needs allowing.
resolvers=$(awk '$1 == "nameserver" { print $2 }' /etc/resolv.conf 2>/dev/null || true)
blocked=$("$PYTHON" - $resolvers <<'EOF'
import ipaddress, sys
for arg in sys.argv[1:]:
    try:
        address = ipaddress.ip_address(arg.split("%")[0])
    except ValueError:
        continue
    if not address.is_global and str(address) != "127.0.0.53":
        print(address)
EOF
)

if [ "$DRY_RUN" = 1 ]; then echo; echo "(dry run: nothing was changed)"; fi
# What the service sees, for commands run by hand: its state and credential folders.
as_service="env STATE_DIRECTORY=/var/lib/newsmon CREDENTIALS_DIRECTORY=/etc/newsmon/credentials"
cat <<EOF

newsmon goes in $DESTDIR$PREFIX. Next:

  1. Edit the watchlist:          $CONF/newsmon.toml
     Secrets go in root-only files in $CONF/credentials/ (for example
     smtp_password), named in the watchlist as
       password_file = "\${CREDENTIALS_DIRECTORY}/smtp_password"
     Check it:  $as_service $PREFIX/bin/newsmon check --config /etc/newsmon/newsmon.toml
  2. Start it, now and at boot:   systemctl enable --now newsmon
  3. After editing the watchlist: systemctl reload newsmon
  4. Watch it:                    journalctl -u newsmon -f
     Is it working?  $as_service $PREFIX/bin/newsmon status --config /etc/newsmon/newsmon.toml
EOF
if [ -n "$blocked" ]; then
    cat <<EOF

Your DNS resolver is at an address the unit's IPAddressDeny= blocks:
$(printf '  %s\n' $blocked)
Allow it with a drop-in (systemctl edit newsmon):
  [Service]
$(printf '  IPAddressAllow=%s\n' $blocked)
EOF
fi
