if [ -d /run/systemd/system ]; then
    systemctl daemon-reload || true
    # $1 >= 1: an upgrade: a running service restarts on the new binary.
    if [ "$1" -ge 1 ]; then
        systemctl try-restart orgsync.service || true
    fi
fi
