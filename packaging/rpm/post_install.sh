if command -v systemd-sysusers >/dev/null 2>&1; then
    systemd-sysusers orgsync.conf
fi
chgrp orgsync /etc/orgsync/orgsync.toml
chmod 0640 /etc/orgsync/orgsync.toml
if [ -d /run/systemd/system ]; then
    systemctl daemon-reload || true
fi
