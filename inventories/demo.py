"""The bundled MediaNest demo stack on this machine (pyinfra inventory).

`rollout` targets it by default. Host data says where the stack lives and how
to reach it; plans refer to it as {{ host.data.KEY }}.
"""
from pathlib import Path

_project = Path(__file__).resolve().parent.parent / "examples" / "medianest"

app_servers = [
    (
        "@local",
        {
            "project_dir": str(_project),
            "compose_file": "docker-compose.production.yml",
            "compose_project": "medianest",
            "app_port": 18080,
            "frontend_port": 18081,
            "redis_port": 16379,
            "frontend_image": "medianest/frontend:latest",
        },
    ),
]
