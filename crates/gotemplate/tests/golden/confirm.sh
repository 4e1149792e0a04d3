#!/bin/sh
# Re-confirms every golden case against the real helm (see README.md here).
exec python3 "$(dirname "$0")/confirm.py" "${1:-/work/main/target/oracle/helm}"
