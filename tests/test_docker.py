"""The image's files agree with each other and with the README; the entrypoint sizes the driver.

`make test-image` (docker/test-image.sh, run by .ci/run after `make test`) builds the image and
runs it; these fast checks catch a broken reference (a copied file that is gone, a compose store
that differs from conf/docker.yaml, a README block the image test would not find) without an engine.
"""

import os
import re
import shlex
import subprocess
from pathlib import Path

import pytest
import yaml

from linkage.config import PROJECT_ROOT, load_config

DOCKER = PROJECT_ROOT / "docker"
DOCKERFILE = DOCKER / "Dockerfile"
COMPOSE = DOCKER / "compose.yaml"
ENTRYPOINT = DOCKER / "entrypoint.sh"
KNOWN_INSTRUCTIONS = {
    "FROM",
    "RUN",
    "COPY",
    "WORKDIR",
    "ENV",
    "ARG",
    "VOLUME",
    "ENTRYPOINT",
    "CMD",
    "EXPOSE",
    "LABEL",
    "USER",
}


def dockerfile_instructions() -> list[tuple[str, str]]:
    text = re.sub(r"\\\n", " ", DOCKERFILE.read_text(encoding="utf-8"))
    instructions = []
    for line in text.splitlines():
        line = line.strip()
        if line and not line.startswith("#"):
            keyword, _, rest = line.partition(" ")
            instructions.append((keyword.upper(), rest.strip()))
    return instructions


def dockerignore_patterns() -> set[str]:
    lines = (PROJECT_ROOT / ".dockerignore").read_text(encoding="utf-8").splitlines()
    return {line.strip() for line in lines if line.strip() and not line.startswith("#")}


def readme_block(name: str) -> list[str]:
    """Commands of the README block after `<!-- test-image: name -->`, as docker/test-image.sh reads them."""
    text = (PROJECT_ROOT / "README.md").read_text(encoding="utf-8")
    marker = f"<!-- test-image: {name} -->\n```bash\n"
    assert marker in text, f"README.md lacks the block {name} that make test-image runs"
    block = text.split(marker, 1)[1].split("```", 1)[0]
    joined = re.sub(r"\\\n\s*", " ", block)
    return [line for line in joined.splitlines() if line.strip() and not line.lstrip().startswith("#")]


def test_dockerfile_parses_and_takes_its_base_as_a_build_arg():
    instructions = dockerfile_instructions()
    assert {keyword for keyword, _ in instructions} <= KNOWN_INSTRUCTIONS
    assert instructions[0] == ("ARG", "BASE_IMAGE=python:3.11-slim-bookworm")
    assert instructions[1] == ("FROM", "${BASE_IMAGE}")


def test_every_copied_path_exists_and_is_in_the_build_context():
    copies = [shlex.split(rest) for keyword, rest in dockerfile_instructions() if keyword == "COPY"]
    ignored = dockerignore_patterns()
    assert copies
    for parts in copies:
        for source in parts[:-1]:
            assert (PROJECT_ROOT / source).exists(), f"Dockerfile copies missing {source}"
            assert source.split("/")[0] not in ignored, (
                f"Dockerfile copies {source}, which .dockerignore excludes"
            )


def test_context_excludes_tests_data_secrets_and_local_builds():
    ignored = dockerignore_patterns()
    assert {".git", ".venv", "jars", "lake", "data", "secrets", "tests", "**/__pycache__"} <= ignored
    copied = [rest for keyword, rest in dockerfile_instructions() if keyword == "COPY"]
    assert not any(rest.split()[0] in {"tests", "."} for rest in copied)


def test_image_installs_the_pinned_dependencies_from_pyproject_and_fetches_the_jars():
    runs = [rest for keyword, rest in dockerfile_instructions() if keyword == "RUN"]
    install = next(run for run in runs if "-r /tmp/requirements.txt" in run)
    assert "tomllib.load(open('pyproject.toml'" in install and "['dependencies']" in install
    assert all("--no-cache-dir" in run for run in runs if "pip install" in run)
    assert any("python -m linkage.jars" in run for run in runs), (
        "the image must fetch the Delta jars at build time"
    )
    # The same extraction the Dockerfile runs gives every pinned dependency of pyproject.toml.
    import tomllib

    pins = tomllib.loads((PROJECT_ROOT / "pyproject.toml").read_text())["project"]["dependencies"]
    assert "pyspark==4.0.5" in pins and all("==" in pin for pin in pins)


def test_image_runs_as_a_non_root_user_starts_the_pipeline_and_documents_its_ports():
    instructions = dockerfile_instructions()
    users = [rest for keyword, rest in instructions if keyword == "USER"]
    assert users and users[-1] not in {"root", "0"}
    assert any(
        keyword == "RUN" and "useradd --uid 1000" in rest and users[-1] in rest
        for keyword, rest in instructions
    )
    cmd = next(rest for keyword, rest in instructions if keyword == "CMD")
    assert '"jobs.pipeline"' in cmd and '"conf/docker.yaml"' in cmd
    assert load_config(PROJECT_ROOT / "conf" / "docker.yaml").environment == "docker"
    entry = next(rest for keyword, rest in instructions if keyword == "ENTRYPOINT")
    assert "/usr/local/bin/linkage-entrypoint" in entry
    assert any(
        keyword == "COPY" and rest == "docker/entrypoint.sh /usr/local/bin/linkage-entrypoint"
        for keyword, rest in instructions
    )
    exposed = {port for keyword, rest in instructions if keyword == "EXPOSE" for port in rest.split()}
    assert {"4040", "5000"} <= exposed
    assert "127.0.0.1:4040:4040" in (PROJECT_ROOT / "README.md").read_text(encoding="utf-8")


def test_compose_file_builds_with_the_base_arg_and_publishes_a_healthy_mlflow_ui():
    compose = yaml.safe_load(COMPOSE.read_text(encoding="utf-8"))
    build = compose["services"]["pipeline"]["build"]
    context = (COMPOSE.parent / build["context"]).resolve()
    assert context == PROJECT_ROOT
    assert (context / build["dockerfile"]).resolve() == DOCKERFILE
    assert build["args"]["BASE_IMAGE"] == "${BASE_IMAGE:-python:3.11-slim-bookworm}"
    mlflow = compose["services"]["mlflow"]
    assert mlflow["image"] == compose["services"]["pipeline"]["image"]
    assert mlflow["ports"] == ["127.0.0.1:${MLFLOW_PORT:-5000}:5000"]
    assert "http://127.0.0.1:5000/health" in " ".join(mlflow["healthcheck"]["test"])
    # The store the UI reads is the one conf/docker.yaml writes.
    store = mlflow["command"][mlflow["command"].index("--backend-store-uri") + 1]
    assert store == load_config(PROJECT_ROOT / "conf" / "docker.yaml").tracking_uri


def test_the_key_secret_is_mounted_where_docker_config_reads_it_and_never_committed():
    compose = yaml.safe_load(COMPOSE.read_text(encoding="utf-8"))
    secret_file = (COMPOSE.parent / compose["secrets"]["linkage_pseudo_key"]["file"]).resolve()
    assert secret_file.parent == PROJECT_ROOT / "secrets"
    assert "secrets/" in (PROJECT_ROOT / ".gitignore").read_text().split()
    assert "secrets" in dockerignore_patterns()
    config = load_config(PROJECT_ROOT / "conf" / "docker.yaml")
    assert config.pseudonymise.key_file == "/run/secrets/linkage_pseudo_key"
    assert "linkage_pseudo_key" in compose["services"]["pipeline"]["secrets"]


def test_the_trial_overlay_is_the_docker_config_in_local_mode():
    # The quick start's conf/docker-trial.yaml: local mode (a generated extract, its own approved
    # model) chosen in a file, as the loader requires, and otherwise conf/docker.yaml to the letter.
    trial = yaml.safe_load((PROJECT_ROOT / "conf" / "docker-trial.yaml").read_text(encoding="utf-8"))
    assert trial == {"extends": "docker.yaml", "environment": "local"}
    trial_config = load_config(PROJECT_ROOT / "conf" / "docker-trial.yaml")
    docker_config = load_config(PROJECT_ROOT / "conf" / "docker.yaml")
    assert (trial_config.environment, docker_config.environment) == ("local", "docker")
    assert trial_config.model_dump(exclude={"environment"}) == docker_config.model_dump(
        exclude={"environment"}
    )


def test_volumes_map_the_data_folder_the_docker_config_uses():
    compose = yaml.safe_load(COMPOSE.read_text(encoding="utf-8"))
    config = load_config(PROJECT_ROOT / "conf" / "docker.yaml")
    for service in ("pipeline", "mlflow"):
        targets = [volume.split(":")[1] for volume in compose["services"][service]["volumes"]]
        assert "/data" in targets
    assert Path(config.paths.lake).is_relative_to("/data") and Path(config.paths.raw).is_relative_to("/data")


@pytest.mark.parametrize("engine", ["podman", "docker"])
def test_readme_quick_starts_build_with_the_script_and_pass_the_key_where_the_config_reads_it(engine):
    commands = readme_block(f"{engine}-quickstart")
    assert "docker/build.sh" in commands
    run = next(command for command in commands if command.startswith(f"{engine} run "))
    assert "--memory" in run and '-v "$PWD/data:/data"' in run and "linkage:latest" in run
    assert "python -m jobs.pipeline --config conf/docker-trial.yaml" in run
    key_mount = (
        "--secret linkage_pseudo_key"
        if engine == "podman"
        else "secrets/pseudo_key:/run/secrets/linkage_pseudo_key:ro"
    )
    assert key_mount in run
    compose = readme_block(f"{engine}-compose")
    assert [command.split("#")[0].split()[-1] for command in compose] == ["mlflow", "down"]
    assert all("-f docker/compose.yaml" in command for command in compose)


def test_ci_runs_the_suite_then_the_image_test_and_make_wires_the_scripts():
    ci = (PROJECT_ROOT / ".ci" / "run").read_text(encoding="utf-8")
    assert ci.index("make test\n") < ci.index("make test-image")
    # Unconditional: the last command, behind no switch.
    assert ci.rstrip().splitlines()[-1] == "make test-image" and "LINKAGE_CI_IMAGE" not in ci
    assert "apt-get install -y" in ci and "podman-compose" in ci
    makefile = (PROJECT_ROOT / "Makefile").read_text(encoding="utf-8")
    assert re.search(r"^image:.*\n\tdocker/build.sh$", makefile, re.M)
    assert re.search(r"^test-image:.*\n\tdocker/test-image.sh$", makefile, re.M)
    for script in ("build.sh", "test-image.sh", "entrypoint.sh"):
        assert os.access(DOCKER / script, os.X_OK), f"docker/{script} is not executable"
        subprocess.run(["bash", "-n", str(DOCKER / script)], check=True)


def run_entrypoint(
    tmp_path: Path, cgroup_files: dict[str, str], *command: str, extra_env: dict[str, str] | None = None
) -> list[str]:
    """Run docker/entrypoint.sh with a fake cgroup tree and a `python` that prints its arguments."""
    cgroup = tmp_path / "cgroup"
    for name, content in cgroup_files.items():
        (cgroup / name).parent.mkdir(parents=True, exist_ok=True)
        (cgroup / name).write_text(content + "\n")
    bin_dir = tmp_path / "bin"
    bin_dir.mkdir(exist_ok=True)
    fake = bin_dir / "python"
    fake.write_text(
        '#!/bin/sh\necho "SPARK_DRIVER_MEMORY=${SPARK_DRIVER_MEMORY:-unset}"\nfor a in "$@"; do echo "$a"; done\n'
    )
    fake.chmod(0o755)
    env = {"PATH": f"{bin_dir}:/usr/bin:/bin", "LINKAGE_CGROUP_ROOT": str(cgroup), **(extra_env or {})}
    result = subprocess.run(
        ["bash", str(ENTRYPOINT), *command], env=env, capture_output=True, text=True, check=True
    )
    return result.stdout.splitlines()


def test_entrypoint_gives_the_driver_65_percent_of_a_cgroup_v2_limit_before_the_users_settings(tmp_path):
    out = run_entrypoint(
        tmp_path,
        {"memory.max": str(4 * 1024**3)},
        "python",
        "-m",
        "jobs.pipeline",
        "--set",
        "spark.driver_memory=1g",
    )
    # 4096 MiB * 65 / 100 = 2662 MiB; the user's own --set comes later, so it still wins.
    assert out == [
        "SPARK_DRIVER_MEMORY=2662m",
        "-m",
        "jobs.pipeline",
        "--set",
        "spark.driver_memory=2662m",
        "--set",
        "spark.driver_memory=1g",
    ]


def test_entrypoint_reads_a_cgroup_v1_limit_and_honours_an_explicit_setting(tmp_path):
    out = run_entrypoint(
        tmp_path, {"memory/memory.limit_in_bytes": str(2 * 1024**3)}, "python", "-m", "jobs.train"
    )
    assert out[:1] == ["SPARK_DRIVER_MEMORY=1331m"] and "spark.driver_memory=1331m" in out
    out = run_entrypoint(
        tmp_path, {}, "python", "-m", "jobs.train", extra_env={"LINKAGE_DRIVER_MEMORY": "5g"}
    )
    assert out == ["SPARK_DRIVER_MEMORY=5g", "-m", "jobs.train", "--set", "spark.driver_memory=5g"]


@pytest.mark.parametrize(
    "files", [{"memory.max": "max"}, {"memory/memory.limit_in_bytes": "9223372036854771712"}, {}]
)
def test_entrypoint_leaves_the_configured_driver_memory_without_a_limit(tmp_path, files):
    out = run_entrypoint(tmp_path, files, "python", "-m", "jobs.pipeline")
    assert out == ["SPARK_DRIVER_MEMORY=unset", "-m", "jobs.pipeline"]


def test_entrypoint_passes_other_commands_through_unchanged(tmp_path):
    out = run_entrypoint(tmp_path, {"memory.max": str(4 * 1024**3)}, "python", "-c", "print(1)")
    assert out == ["SPARK_DRIVER_MEMORY=2662m", "-c", "print(1)"]
