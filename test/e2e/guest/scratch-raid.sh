#!/bin/bash
set -euo pipefail
# shellcheck source=/dev/null
source "$E2E_LIB/lib.sh"
record mdstat.txt cat /proc/mdstat
record journal-setup.txt journalctl -b -u ctrvol-setup.service -o cat --no-pager
record state.json cat /var/lib/ctrvol/state.json
record findmnt.txt findmnt /var/lib/containerd
record mdconf.txt cat /etc/mdadm/mdadm.conf
record status.txt ctrvol status
case $E2E_BOOT in
  1) next_boot ;;
esac
