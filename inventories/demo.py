"""The bundled MediaNest demo stack on this machine (pyinfra inventory).

`rollout` targets it by default. Host data says where the stack lives and how
to reach it; plans refer to it as {{ host.data.KEY }}.

The stack lives outside the source tree, where `rollout demo up` copies it from
examples/medianest: $ROLLOUT_DEMO_DIR, else $XDG_STATE_HOME/rollout/demo/medianest
(~/.local/state/rollout/demo/medianest). The compose project is $ROLLOUT_DEMO_PROJECT
(default medianest); ports and the frontend tag come from the MEDIANEST_* variables
the compose file reads (defaults 18080, 18081, 16379, medianest/frontend:latest).
One definition, in orchestrator/demo_paths.py, serves this file and `rollout demo`.
"""
from orchestrator.demo_paths import demo_host_data as _demo_host_data

app_servers = [
    ("@local", _demo_host_data()),
]
