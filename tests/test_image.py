"""SD image build: models, rootfs inputs, partition assembly, first boot, boot test
(the build config and its errors: test_image_build.py)."""

from __future__ import annotations

import dataclasses
import hashlib
import json
import os
import re
import shutil
import subprocess
import sys
import zipfile
from pathlib import Path

import pytest
import yaml

from image_support import (  # image/ on sys.path
    IMAGE,
    REPO,
    needs_root,
    run_build,
    small_disk,
    write_config,
)

# isort: split
from toyd_image import assemble, config, layer, models, rootfs, wheels
from toyd_image.config import ImageBuildError

HAVE_TOOLS = all(
    shutil.which(t) for t in ("sfdisk", "mkfs.vfat", "mcopy", "mke2fs", "blkid", "debugfs")
)
needs_tools = pytest.mark.skipif(
    not HAVE_TOOLS, reason="needs fdisk dosfstools mtools e2fsprogs (apt)"
)


# --- models -----------------------------------------------------------------------------------


def test_model_from_file_url_archive_is_unpacked_and_verified(tmp_path: Path) -> None:
    archive = tmp_path / "vosk-model-tiny.zip"
    with zipfile.ZipFile(archive, "w") as zf:
        zf.writestr("vosk-model-tiny/am/final.mdl", b"model bytes")
        zf.writestr("vosk-model-tiny/conf/model.conf", b"--sample-frequency=16000\n")
    digest = hashlib.sha256(archive.read_bytes()).hexdigest()
    dest = tmp_path / "models"
    models.fetch(config.Model(source=archive.as_uri(), dest="vosk", sha256=digest), dest)
    assert (dest / "vosk/am/final.mdl").read_bytes() == b"model bytes"
    with pytest.raises(ImageBuildError, match="sha256 of file://"):
        models.fetch(config.Model(source=archive.as_uri(), dest="vosk2", sha256="0" * 64), dest)


def test_model_sources_missing_or_unsupported(tmp_path: Path) -> None:
    with pytest.raises(ImageBuildError, match="does not exist"):
        models.check_sources((config.Model(source=(tmp_path / "gone.zip").as_uri(), dest="x"),))
    with pytest.raises(ImageBuildError, match="package 'no_such_model_pkg' is not installed"):
        models.check_sources((config.Model(source="package:no_such_model_pkg/m.tflite", dest="x"),))
    with pytest.raises(ImageBuildError, match="unsupported URL scheme 'ftp'"):
        models.check_sources((config.Model(source="ftp://host/m.tflite", dest="x"),))


def test_model_from_package_is_copied(tmp_path: Path) -> None:
    model = config.Model(
        source="package:wyoming_openwakeword/models/hey_jarvis_v0.1.tflite", dest="ww/hey.tflite"
    )
    path = models.fetch(model, tmp_path)
    assert path.stat().st_size > 10_000


# --- wheels and rootfs inputs -------------------------------------------------------------------

PYPROJECT = """
[project]
name = "toy"
dependencies = ["pluggy>=1.5", "pyyaml>=6.0"]
[project.optional-dependencies]
device = [
    "numpy>=1.24",
    "PyAudio>=0.2.14",
    "x86-only; platform_machine == 'x86_64'",
    "tflite-runtime-nightly; platform_machine == 'x86_64' or platform_machine == 'aarch64'",
    "py312-only; python_version >= '3.12'",
]
cloud = ["faster-whisper>=1.0"]
"""


def test_device_requirements_come_from_pyproject(tmp_path: Path) -> None:
    (tmp_path / "pyproject.toml").write_text(PYPROJECT)
    reqs = [r.name for r in wheels.device_requirements(tmp_path / "pyproject.toml")]
    assert reqs == [
        "pluggy",
        "pyyaml",
        "numpy",
        "PyAudio",
        "tflite-runtime-nightly",
    ]  # as on a Pi, Python 3.11
    repo_reqs = {r.name for r in wheels.device_requirements(REPO / "pyproject.toml")}
    assert {
        "pluggy",
        "pyyaml",
        "numpy",
        "pyaudio",
    } <= repo_reqs and "faster-whisper" not in repo_reqs
    (tmp_path / "pyproject.toml").write_text("[project\n")
    with pytest.raises(ImageBuildError, match="cannot read the dependency list"):
        wheels.device_requirements(tmp_path / "pyproject.toml")


def test_plan_maps_debian_and_substitutes(tmp_path: Path) -> None:
    (tmp_path / "pyproject.toml").write_text(PYPROJECT)
    cfg = config.load(IMAGE / "build.yaml")
    cfg = dataclasses.replace(cfg, substitutes={"tflite-runtime-nightly": "ai-edge-litert==1.4.0"})
    pip_reqs, debian, notes = wheels.plan(
        cfg, wheels.device_requirements(tmp_path / "pyproject.toml")
    )
    assert debian == ["python3-pyaudio"]  # PyAudio matches the pyaudio entry (PEP 503 names)
    assert pip_reqs == ["pluggy>=1.5", "pyyaml>=6.0", "numpy>=1.24", "ai-edge-litert==1.4.0"]
    assert set(notes) == {"PyAudio", "tflite-runtime-nightly"}


def test_cache_key_follows_packages_and_hooks(tmp_path: Path) -> None:
    hooks = tmp_path / "hooks"
    shutil.copytree(IMAGE / "hooks", hooks)
    packages = tmp_path / "packages.txt"
    shutil.copyfile(IMAGE / "packages.txt", packages)
    cfg = config.load(write_config(tmp_path, hooks=str(hooks), packages=str(packages)))
    key = rootfs.cache_key(cfg)
    assert key == rootfs.cache_key(
        config.load(write_config(tmp_path, hooks=str(hooks), packages=str(packages)))
    )
    with packages.open("a") as f:
        f.write("# a comment changes nothing\n")
    assert rootfs.cache_key(cfg) == key
    with packages.open("a") as f:
        f.write("htop\n")
    assert rootfs.cache_key(cfg) != key
    key2 = rootfs.cache_key(cfg)
    (hooks / "customize90-extra.sh").write_text("#!/bin/sh\n")
    assert rootfs.cache_key(cfg) != key2


def test_unit_must_take_the_image_arguments(tmp_path: Path) -> None:
    assert layer.check_unit(REPO / "systemd/toyd.service")
    unit = tmp_path / "toyd.service"
    unit.write_text((REPO / "systemd/toyd.service").read_text().replace(" $TOYD_ARGS", ""))
    with pytest.raises(
        ImageBuildError, match=r"needs EnvironmentFile=-/etc/default/toyd and \$TOYD_ARGS"
    ):
        layer.check_unit(unit)
    with pytest.raises(ImageBuildError, match="is missing"):
        layer.check_unit(tmp_path / "nope.service")


def test_test_variant_config_is_the_example_with_its_changes(tmp_path: Path) -> None:
    assert (
        layer.toyd_config(config.load(IMAGE / "build.yaml"))
        == (REPO / "config/toyd.yaml").read_text()
    )
    text = layer.toyd_config(config.load(IMAGE / "build.yaml", variant="test"))
    merged, example = yaml.safe_load(text), yaml.safe_load((REPO / "config/toyd.yaml").read_text())
    assert merged["plugins"] == example["plugins"] and merged["button"] == example["button"]
    assert merged["led"]["brightness"] == 1.0 and merged["led"]["offline"] is None
    assert merged["led"]["states"]["idle"] == {"color": "#ff0000", "animation": "solid"}
    assert merged["led"]["states"]["thinking"] == example["led"]["states"]["thinking"]  # kept
    path = tmp_path / "toyd.yaml"
    path.write_text(text)
    check = subprocess.run(
        [sys.executable, "-m", "toyd", "check-config", str(path)],
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert check.returncode == 0, check.stdout + check.stderr


@pytest.mark.skipif(
    not shutil.which("dtc"), reason="needs dtc (apt-get install device-tree-compiler)"
)
def test_sound_overlays_compile(tmp_path: Path) -> None:
    built = layer.compile_overlays(layer.DTS_DIR, tmp_path / "overlays")
    assert sorted(p.name for p in built) == ["toyd-max98357a.dtbo", "toyd-wm8960.dtbo"]
    bad = tmp_path / "dts"
    bad.mkdir()
    (bad / "toyd-broken.dts").write_text(
        "/dts-v1/;\n/plugin/;\n/ { fragment@0 { target-path = ; }; };\n"
    )
    with pytest.raises(
        ImageBuildError, match="device-tree overlay toyd-broken.dts does not compile"
    ):
        layer.compile_overlays(bad, tmp_path / "out")


@pytest.mark.skipif(not shutil.which("aplay"), reason="needs alsa-utils")
def test_image_alsa_config_defines_the_names_toyd_uses() -> None:
    conf = IMAGE / "overlay/rootfs/etc/asound.conf"
    env = dict(os.environ, ALSA_CONFIG_PATH=f"/usr/share/alsa/alsa.conf:{conf}")
    names = subprocess.run(
        ["aplay", "-L"], capture_output=True, text=True, env=env, timeout=60
    ).stdout.split()
    assert {"default", "toyd_speaker", "toyd_mic", "toyd_i2s_mic"} <= set(names)
    assert "toyd_dmix" not in names  # the plumbing stays out of ALSA's list
    # A second program attaches to toyd's open subdevice only if the slave names it (snd-aloop
    # in the test image has eight; with none named the kernel refuses: "unable to open slave").
    slaves = re.findall(r'pcm "(hw:[^"]*)"', conf.read_text())
    assert len(slaves) == 3 and all(slave.endswith(",SUBDEV=0") for slave in slaves), slaves
    usb = (IMAGE / "overlay/rootfs/etc/modprobe.d/toyd-sound.conf").read_text()
    assert "options snd-usb-audio id=toyd" in usb
    for dts in layer.DTS_DIR.glob("*.dts"):
        assert 'simple-audio-card,name = "toyd";' in dts.read_text(), dts.name


# --- partition assembly -------------------------------------------------------------------------


def fake_trees(tmp_path: Path) -> tuple[Path, Path]:
    boot, root = tmp_path / "boot", tmp_path / "root"
    (boot / "toyd").mkdir(parents=True)
    (boot / "config.txt").write_text("arm_64bit=1\n")
    (boot / "toyd/toyd.yaml").write_text("role: device\n")
    for d in ("etc", "usr/bin", "var/lib/toyd"):
        (root / d).mkdir(parents=True)
    (root / "etc/hostname").write_text("toyd\n")
    (root / "usr/bin/tool").write_bytes(b"\x7fELF" + b"\0" * 5000)
    os.chmod(root / "usr/bin/tool", 0o755)
    (root / "usr/bin/tool-link").symlink_to("tool")
    os.link(root / "usr/bin/tool", root / "usr/bin/tool-hard")
    if os.geteuid() == 0:
        os.chown(root / "var/lib/toyd", 999, 995)
    os.chmod(root / "var/lib/toyd", 0o750)
    return boot, root


def blkid(image: Path, offset: int) -> dict[str, str]:
    out = subprocess.run(
        ["blkid", "-p", "-O", str(offset), "-o", "export", str(image)],
        capture_output=True,
        text=True,
        check=True,
    ).stdout
    return dict(line.split("=", 1) for line in out.splitlines() if "=" in line)


@needs_tools
def test_assemble_partitions_and_labels(tmp_path: Path) -> None:
    boot, root = fake_trees(tmp_path)
    image = tmp_path / "toy.img"
    layout = assemble.assemble(boot, root, image, boot_size_mb=64, root_free_mb=64)
    assert image.stat().st_size == layout.total << 20
    parts = assemble.read_table(image)
    assert [p["type"] for p in parts] == ["c", "83"]
    assert parts[0]["start"] == 4 * 2048 and parts[0].get("bootable") is True
    assert parts[1]["start"] == (4 + 64) * 2048 and parts[1]["size"] == layout.root_size * 2048
    fat = blkid(image, parts[0]["start"] * 512)
    ext = blkid(image, parts[1]["start"] * 512)
    assert (fat["TYPE"], fat["LABEL"]) == ("vfat", "RASPIFIRM")
    assert (ext["TYPE"], ext["LABEL"]) == ("ext4", "RASPIROOT")
    listing = subprocess.run(
        ["mdir", "-b", "-i", f"{image}@@{parts[0]['start'] * 512}", "::/toyd"],
        capture_output=True,
        text=True,
        check=True,
        env=dict(os.environ, MTOOLS_SKIP_CHECK="1"),
    )
    assert "toyd.yaml" in listing.stdout
    rootpart = tmp_path / "root.ext4"
    subprocess.run(
        [
            "dd",
            f"if={image}",
            f"of={rootpart}",
            "bs=1M",
            f"skip={layout.root_start}",
            "status=none",
        ],
        check=True,
    )
    stat = subprocess.run(
        ["debugfs", "-R", "stat /var/lib/toyd", str(rootpart)], capture_output=True, text=True
    ).stdout
    assert "Mode:  0750" in stat
    if os.geteuid() == 0:
        assert "User:   999" in stat and "Group:   995" in stat
    links = subprocess.run(
        ["debugfs", "-R", "stat /usr/bin/tool", str(rootpart)], capture_output=True, text=True
    ).stdout
    assert "Links: 2" in links
    cat = subprocess.run(
        ["debugfs", "-R", "cat /etc/hostname", str(rootpart)], capture_output=True, text=True
    ).stdout
    assert cat == "toyd\n"
    # The image file is sparse: free space costs nothing on the build machine.
    assert image.stat().st_blocks * 512 < image.stat().st_size


@needs_tools
def test_assemble_refuses_oversized_boot_files(tmp_path: Path) -> None:
    boot, root = fake_trees(tmp_path)
    (boot / "big.bin").write_bytes(os.urandom(1 << 20) * 60)
    with pytest.raises(ImageBuildError, match="boot files need 60 MiB but boot_size_mb is 64"):
        assemble.assemble(boot, root, tmp_path / "x.img", boot_size_mb=64, root_free_mb=64)


@needs_tools
@needs_root
def test_assemble_out_of_space_leaves_nothing(tmp_path: Path) -> None:
    boot, root = fake_trees(tmp_path)
    with small_disk(tmp_path, 24) as small:
        (small / "filler").write_bytes(b"\1" * (20 << 20))  # not sparse: the disk really fills up
        with pytest.raises(ImageBuildError, match="no space left|No space left"):
            assemble.assemble(boot, root, small / "toy.img", boot_size_mb=64, root_free_mb=64)
        assert sorted(p.name for p in small.iterdir()) == ["filler"]


# --- boot test script -------------------------------------------------------------------------


def test_boot_test_rejects_a_non_image(tmp_path: Path) -> None:
    junk = tmp_path / "junk.img"
    junk.write_bytes(b"\0" * 4096)
    proc = subprocess.run(
        [str(IMAGE / "boot-test.sh"), str(junk), "30"], capture_output=True, text=True, timeout=60
    )
    assert proc.returncode == 3
    assert "boot-test:" in proc.stderr
    proc = subprocess.run([str(IMAGE / "boot-test.sh")], capture_output=True, text=True, timeout=60)
    assert proc.returncode == 3 and "Usage" in proc.stdout


@needs_tools
def test_boot_test_needs_a_kernel_on_the_boot_partition(tmp_path: Path) -> None:
    boot, root = fake_trees(tmp_path)
    image = tmp_path / "nokernel.img"
    assemble.assemble(boot, root, image, boot_size_mb=64, root_free_mb=64)
    proc = subprocess.run(
        [str(IMAGE / "boot-test.sh"), str(image), "30"], capture_output=True, text=True, timeout=60
    )
    assert proc.returncode == 3
    assert "no vmlinuz-*/initrd.img-* on the boot partition" in proc.stderr


# --- update test bundles -----------------------------------------------------------------------


@pytest.mark.skipif(
    not all(shutil.which(t) for t in ("rauc", "mksquashfs", "mke2fs", "openssl")),
    reason="needs rauc squashfs-tools e2fsprogs openssl (apt)",
)
def test_update_test_refusals_come_from_the_signature(tmp_path: Path) -> None:
    """The QEMU proof's (d) bundles are small: the host's RAUC must refuse them for their
    signature alone (the same bundle signed and untouched is accepted)."""
    from toyd_image import qemu_update, update

    slot = qemu_update.small_slot(tmp_path / "small", "9.9.9")
    assert (
        "9.9.9"
        in subprocess.run(
            ["debugfs", "-R", "cat /RELEASE", str(slot)], capture_output=True, text=True
        ).stdout
    )
    cert, key = update.dev_keys(tmp_path / "keys")
    stranger = update.dev_keys(tmp_path / "stranger")

    def rauc_info(bundle: Path) -> subprocess.CompletedProcess[str]:
        return subprocess.run(
            ["rauc", "info", f"--keyring={cert}", str(bundle)],
            capture_output=True,
            text=True,
            timeout=60,
        )

    signed = update.bundle(slot, "9.9.9", cert, key, tmp_path / "signed.raucb", "lz4")
    assert rauc_info(signed).returncode == 0
    qemu_update.flip_payload_byte(signed)
    refused = rauc_info(signed)
    assert refused.returncode == 1 and "signature verification failed" in refused.stderr
    other = update.bundle(slot, "9.9.9", *stranger, tmp_path / "stranger.raucb", "lz4")
    refused = rauc_info(other)
    assert refused.returncode == 1 and "signature verification failed" in refused.stderr
    (tmp_path / "junk.raucb").write_bytes(b"\0" * 100)
    with pytest.raises(qemu_update.UpdateTestError, match="not a plain RAUC bundle"):
        qemu_update.flip_payload_byte(tmp_path / "junk.raucb")


# --- slow: the real thing -----------------------------------------------------------------------


def build(out: Path, variant: str, compress: bool, bundle: str = "xz") -> Path:
    """Build a variant; ``bundle``: its update bundle's compression (xz as released)."""
    if (
        os.geteuid() != 0
        or not shutil.which("mmdebstrap")
        or not shutil.which("qemu-system-aarch64")
    ):
        pytest.skip("needs root, mmdebstrap and qemu-system-aarch64 (see docs/image.md)")
    # xz -0: the compression path is exercised; the release preset (-6) only costs CI time.
    args = ["--variant", variant, "--out", str(out), "--bundle-compression", bundle] + (
        ["--xz-level", "0"] if compress else ["--no-compress"]
    )
    # A cached build on a busy 2-core machine: toyd layer, slot image, signed bundle (xz) and
    # xz -0 of the image took over 25 minutes at load 10.
    proc = run_build(*args, timeout=3600)
    assert proc.returncode == 0, proc.stderr[-3000:]
    print(f"{variant} build:", proc.stderr[proc.stderr.rfind("built in") :])  # stage times (-s)
    image = out / f"toyd-pi-{variant}.img"
    assert image.exists() and (out / f"toyd-pi-{variant}.img.sha256").exists()
    assert not list(out.glob(".*part"))
    return image


def boot_test(image: Path, machine: str = "virt") -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [str(IMAGE / "boot-test.sh"), str(image), "900"],  # the hardware checks take minutes
        capture_output=True,
        text=True,
        timeout=1080,
        env=dict(os.environ, BOOT_MACHINE=machine),
    )


@pytest.fixture(scope="module")
def test_image(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The test variant, built once (compressed too) for the boot tests below."""
    return build(tmp_path_factory.mktemp("image"), "test", compress=True)


@pytest.mark.slow
@pytest.mark.timeout(5400)  # the build (in the fixture) and a boot
def test_built_image_boots_and_toyd_is_ready(test_image: Path) -> None:
    boot = boot_test(test_image)
    assert boot.returncode == 0, boot.stderr[-4000:]
    assert "boot-test: PASS" in boot.stderr and '"ready": true' in boot.stderr
    out = test_image.parent
    xz = out / "toyd-pi-test.img.xz"
    digest = (out / "toyd-pi-test.img.xz.sha256").read_text().split()[0]
    assert hashlib.sha256(xz.read_bytes()).hexdigest() == digest
    assert subprocess.run(["xz", "-t", str(xz)], timeout=600).returncode == 0
    table = json.loads(
        subprocess.run(
            ["sfdisk", "--json", str(test_image)], capture_output=True, text=True, check=True
        ).stdout
    )
    # boot, application slots A and B, root (last, so that it grows into the card)
    assert [p["type"] for p in table["partitiontable"]["partitions"]] == ["c", "83", "83", "83"]
    assert (
        "TOYD-SLOT: booted A (good)" in boot.stderr and "/opt/toyd from /dev/vda2 ro" in boot.stderr
    )
    assert re.search(r"RAUC_SYSTEM_BOOTED_BOOTNAME='?A\b", boot.stderr)  # RAUC sees the slot
    assert re.search(r"RAUC_BOOT_PRIMARY='?toyd\.0\b", boot.stderr)
    # QEMU virt has a PL061 with 8 lines: toyd names the chip and the missing pin in one line.
    assert "HW-CHECK: gpio-missing-pin-error: ok" in boot.stderr
    assert "GPIO 17 on /dev/gpiochip0" in boot.stderr and "no such line" in boot.stderr
    assert_sound_shared_with_toyd(boot.stderr)


def assert_sound_shared_with_toyd(said: str) -> None:
    """toyd-hw-check's ALSA checks passed: the image's names open while toyd holds the card."""
    for check in (
        "alsa-card",
        "alsa-held-by-toyd",
        "alsa-names",
        "alsa-capture",
        "alsa-playback",
        "alsa-loopback",
    ):
        assert f"HW-CHECK: {check}: ok" in said, check
    assert "HW-CHECK: PASS" in said


@pytest.mark.slow
@pytest.mark.timeout(5400)  # the build (in the fixture) and a boot
def test_built_image_boots_on_the_pi3_model_from_sd(test_image: Path) -> None:
    """Real GPIO lines: toyd holds the button line as an input with its pull and the LED lines as
    outputs whose levels follow the state machine, moved by parent commands over the guest's
    own MQTT broker (idle -> sleeping -> idle -> muted -> idle); sound shared with toyd."""
    boot = boot_test(test_image, machine="raspi3b")
    assert boot.returncode == 0, boot.stderr[-4000:]
    assert "boot-test: PASS" in boot.stderr
    for check in (
        "gpio-button",
        "gpio-led-outputs",
        "gpio-led-idle",
        "gpio-led-sleeping",
        "gpio-led-awake",
        "gpio-led-muted",
        "gpio-led-unmuted",
    ):
        assert f"HW-CHECK: {check}: ok" in boot.stderr, check
    assert re.search(r'line\s+17:.*"toyd"\s+input .*pull-up', boot.stderr)
    assert "lines (22, 23, 24) = (0, 0, 0)" in boot.stderr  # sleeping: all off
    assert "lines (22, 23, 24) = (0, 0, 1)" in boot.stderr  # muted: blue
    assert_sound_shared_with_toyd(boot.stderr)


@pytest.mark.slow
@pytest.mark.skipif(not shutil.which("fdtoverlay"), reason="needs device-tree-compiler")
def test_sound_overlays_apply_to_the_image_device_trees(test_image: Path, tmp_path: Path) -> None:
    offset = assemble.read_table(test_image)[0]["start"] * 512
    env = dict(os.environ, MTOOLS_SKIP_CHECK="1")
    boards = ("bcm2837-rpi-3-b", "bcm2711-rpi-4-b", "bcm2837-rpi-zero-2-w")
    for name in (
        *(f"{b}.dtb" for b in boards),
        "overlays/toyd-wm8960.dtbo",
        "overlays/toyd-max98357a.dtbo",
    ):
        subprocess.run(
            ["mcopy", "-n", "-i", f"{test_image}@@{offset}", f"::{name}", str(tmp_path)],
            check=True,
            env=env,
            timeout=60,
        )
    for board in boards:
        for overlay in ("toyd-wm8960", "toyd-max98357a"):
            out = tmp_path / f"{board}+{overlay}.dtb"
            proc = subprocess.run(
                [
                    "fdtoverlay",
                    "-i",
                    str(tmp_path / f"{board}.dtb"),
                    "-o",
                    str(out),
                    str(tmp_path / f"{overlay}.dtbo"),
                ],
                capture_output=True,
                text=True,
                timeout=60,
            )
            assert proc.returncode == 0, f"{overlay} on {board}: {proc.stderr}"
            name = subprocess.run(
                ["fdtget", str(out), "/toyd-sound", "simple-audio-card,name"],
                capture_output=True,
                text=True,
                timeout=60,
            ).stdout.strip()
            assert name == "toyd", f"{overlay} on {board}"


@pytest.mark.slow
@pytest.mark.timeout(5400)  # the build (in the fixture) and a boot
def test_boot_test_fails_when_toyd_does_not_start(tmp_path: Path) -> None:
    # Its update bundle is never installed: lz4 is made in seconds, xz took 92 s (docs/image.md).
    boot = boot_test(build(tmp_path / "out", "broken", compress=False, bundle="lz4"))
    assert boot.returncode == 1, boot.stderr[-4000:]
    assert "boot-test: FAIL: toyd.service did not become active with READY" in boot.stderr
    assert "toyd-does-not-exist: No such file or directory" in boot.stderr


@pytest.mark.slow
@pytest.mark.timeout(5400)  # the build (if not done yet) and the update test
def test_update_rollback_and_power_cut_in_qemu(test_image: Path) -> None:
    """image/update-test.sh: a newer build is installed and kept, a build whose toyd cannot
    start rolls back by itself, QEMU killed during rauc install still boots a working version,
    and badly signed or tampered bundles are refused without touching the slots."""
    assert (test_image.parent / "toyd-pi-test.raucb").stat().st_size > 0
    proc = subprocess.run(
        [str(IMAGE / "update-test.sh"), str(test_image)],
        capture_output=True,
        text=True,
        timeout=2900,  # five boots and three installs, all under software emulation
    )
    print(proc.stderr)  # the figures, for the record
    assert proc.returncode == 0, proc.stderr[-6000:]
    for step in ("(a) ok", "(b) ok", "(c) ok", "(d) ok", "update-test: PASS"):
        assert step in proc.stderr, step
    assert "stranger bundle refused" in proc.stderr and "flipped bundle refused" in proc.stderr
