"""The Docker image and compose file parse and refer only to files that exist.

No Docker engine runs in CI, so the image is never built there; what it relies on is:
`make setup` (which CI runs on every machine), the files it copies, and the job it starts.
"""

import re
import shlex
from pathlib import Path

import yaml

from linkage.config import PROJECT_ROOT, load_config

DOCKERFILE = PROJECT_ROOT / "docker" / "Dockerfile"
COMPOSE = PROJECT_ROOT / "docker" / "compose.yaml"
KNOWN_INSTRUCTIONS = {"FROM", "RUN", "COPY", "WORKDIR", "ENV", "ARG", "VOLUME", "ENTRYPOINT", "CMD", "EXPOSE", "LABEL"}


def dockerfile_instructions() -> list[tuple[str, str]]:
    text = re.sub(r"\\\n", " ", DOCKERFILE.read_text(encoding="utf-8"))
    instructions = []
    for line in text.splitlines():
        line = line.strip()
        if line and not line.startswith("#"):
            keyword, _, rest = line.partition(" ")
            instructions.append((keyword.upper(), rest.strip()))
    return instructions


def test_dockerfile_parses_into_known_instructions():
    instructions = dockerfile_instructions()
    assert instructions[0][0] == "FROM"
    assert {keyword for keyword, _ in instructions} <= KNOWN_INSTRUCTIONS


def test_every_copied_path_exists_in_the_repo():
    copies = [shlex.split(rest) for keyword, rest in dockerfile_instructions() if keyword == "COPY"]
    assert copies
    for parts in copies:
        for source in parts[:-1]:
            assert (PROJECT_ROOT / source).exists(), f"Dockerfile copies missing {source}"


def test_image_runs_the_same_setup_as_developers_and_starts_the_pipeline():
    instructions = dockerfile_instructions()
    assert any(keyword == "RUN" and rest.startswith("make setup") for keyword, rest in instructions)
    cmd = next(rest for keyword, rest in instructions if keyword == "CMD")
    assert '"jobs.pipeline"' in cmd and '"conf/docker.yaml"' in cmd
    assert (PROJECT_ROOT / "jobs" / "pipeline.py").exists()
    assert load_config(PROJECT_ROOT / "conf" / "docker.yaml").environment == "docker"


def test_compose_file_refers_to_existing_build_files_and_publishes_the_mlflow_ui():
    compose = yaml.safe_load(COMPOSE.read_text(encoding="utf-8"))
    build = compose["services"]["pipeline"]["build"]
    context = (COMPOSE.parent / build["context"]).resolve()
    assert context == PROJECT_ROOT
    assert (context / build["dockerfile"]).resolve() == DOCKERFILE
    mlflow = compose["services"]["mlflow"]
    assert mlflow["image"] == compose["services"]["pipeline"]["image"]
    assert any(str(port).endswith(":5000") for port in mlflow["ports"])
    # The store the UI reads is the one conf/docker.yaml writes.
    store = mlflow["command"][mlflow["command"].index("--backend-store-uri") + 1]
    assert store == load_config(PROJECT_ROOT / "conf" / "docker.yaml").tracking_uri


def test_the_key_secret_is_mounted_where_docker_config_reads_it_and_never_committed():
    compose = yaml.safe_load(COMPOSE.read_text(encoding="utf-8"))
    secret_file = (COMPOSE.parent / compose["secrets"]["linkage_pseudo_key"]["file"]).resolve()
    assert secret_file.parent == PROJECT_ROOT / "secrets"
    assert "secrets/" in (PROJECT_ROOT / ".gitignore").read_text().split()
    config = load_config(PROJECT_ROOT / "conf" / "docker.yaml")
    assert config.pseudonymise.key_file == "/run/secrets/linkage_pseudo_key"
    assert "linkage_pseudo_key" in compose["services"]["pipeline"]["secrets"]


def test_volumes_map_the_data_folder_the_docker_config_uses():
    compose = yaml.safe_load(COMPOSE.read_text(encoding="utf-8"))
    config = load_config(PROJECT_ROOT / "conf" / "docker.yaml")
    for service in ("pipeline", "mlflow"):
        targets = [volume.split(":")[1] for volume in compose["services"][service]["volumes"]]
        assert "/data" in targets
    assert Path(config.paths.lake).is_relative_to("/data") and Path(config.paths.raw).is_relative_to("/data")
