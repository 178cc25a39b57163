"""The Android harness without a phone: commands, parsing, errors.

The fixtures in tests/fixtures/ follow the output format of TFLite's
benchmark_model (tensorflow/lite/tools/benchmark/README.md): the classic
form, and the newer one with ``INFO:`` prefixes, percentiles and an
op-profiling table whose ``Timings (microseconds): count=...`` lines must
not be taken for the benchmark's statistics.
"""

import os
import pathlib
import shlex
import stat

import pytest

from gram_jax.cli import main
from gram_jax.export import android
from gram_jax.export.android import AndroidError, CommandResult

FIXTURES = pathlib.Path(__file__).parent / "fixtures"


def fixture(name):
  return (FIXTURES / name).read_text()


# --- commands -----------------------------------------------------------------


def test_benchmark_argv_and_shell_command():
  argv = android.benchmark_argv(
      "/data/local/tmp/m.tflite",
      threads=4,
      runs=100,
      warmup=5,
      use_xnnpack=False,
      cpu_mask="0xF0",
  )
  assert argv == [
      "taskset",
      "f0",
      "/data/local/tmp/benchmark_model",
      "--graph=/data/local/tmp/m.tflite",
      "--num_threads=4",
      "--num_runs=100",
      "--warmup_runs=5",
      "--use_xnnpack=false",
  ]
  assert android.benchmark_argv("/x.tflite")[0] == android.DEVICE_BINARY
  assert "--use_xnnpack=true" in android.benchmark_argv("/x.tflite")
  # adb shell hands the line to sh: odd names stay one quoted word.
  line = android.shell_command(["ls", "/data/local/tmp/a b;rm -rf x"])
  assert shlex.split(line) == ["ls", "/data/local/tmp/a b;rm -rf x"]


def test_adb_argv():
  assert android.adb_argv("adb", None, "devices") == ["adb", "devices"]
  assert android.adb_argv("/bin/adb", "R58M", "shell", "ls") == [
      "/bin/adb",
      "-s",
      "R58M",
      "shell",
      "ls",
  ]


@pytest.mark.parametrize(
    "mask,want", [("f0", "f0"), ("0x3", "3"), ("0F", "f"), (" FF ", "ff")]
)
def test_cpu_mask_normalisation(mask, want):
  assert android.normalize_cpu_mask(mask) == want


@pytest.mark.parametrize("mask", ["", "0", "0x0", "g1", "f0,1", "-1"])
def test_bad_cpu_masks(mask):
  with pytest.raises(AndroidError, match="cpu_mask"):
    android.normalize_cpu_mask(mask)


def test_bad_counts():
  with pytest.raises(AndroidError, match="threads"):
    android.benchmark_argv("/x", threads=0)
  with pytest.raises(AndroidError, match="warmup"):
    android.benchmark_argv("/x", warmup=-1)


# --- parsing ------------------------------------------------------------------


def test_parse_classic_output():
  p = android.parse_benchmark_output(fixture("benchmark_model_classic.txt"))
  assert (
      p["init_us"],
      p["first_us"],
      p["warmup_avg_us"],
      p["inference_avg_us"],
  ) == (3134, 9420, 6027.1, 5890.45)
  assert p["stats"] == {
      "count": 170,
      "first": 5951,
      "curr": 5861,
      "min": 5798,
      "max": 6210,
      "avg": 5890.45,
      "std": 67,
  }
  assert p["warmup_stats"]["count"] == 83


def test_parse_litert_output_with_profiling_tables():
  p = android.parse_benchmark_output(fixture("benchmark_model_litert.txt"))
  assert p["inference_avg_us"] == 107.2
  s = p["stats"]
  assert s["count"] == 9326 and s["avg"] == 107.2  # not the profiler's 105
  assert s["max"] == 1203.4 and s["median"] == 104 and s["p95"] == 125
  assert p["warmup_stats"]["avg"] == 110.8


def test_parse_logcat_prefix_and_summary_only():
  p = android.parse_benchmark_output(
      "I tflite  : count=50 first=10 curr=9 min=8 max=12 avg=9.5 std=1\n"
  )
  assert p["stats"]["avg"] == 9.5 and p["inference_avg_us"] is None
  p = android.parse_benchmark_output(
      "Inference timings in us: Init: 1, First inference: 2, Warmup (avg): "
      "3.5e+03, Inference (avg): 2.95034e+06\n"
  )
  assert p["inference_avg_us"] == 2950340.0 and p["stats"] is None


def test_parse_failed_output():
  with pytest.raises(AndroidError, match="Failed to mmap model"):
    android.parse_benchmark_output(fixture("benchmark_model_failed.txt"))


def test_parse_devices_and_select():
  text = (
      "* daemon not running; starting now at tcp:5037\n"
      "* daemon started successfully\n"
      "List of devices attached\n"
      "R58M123\tdevice\n"
      "emulator-5554\toffline\n"
      "0123ABC\tunauthorized\n\n"
  )
  devices = android.parse_devices(text)
  assert devices == [
      ("R58M123", "device"),
      ("emulator-5554", "offline"),
      ("0123ABC", "unauthorized"),
  ]
  assert android.select_device(devices, "R58M123") == "R58M123"
  assert android.select_device(devices[:1]) == "R58M123"
  with pytest.raises(
      AndroidError,
      match=r"several devices .*R58M123.*" r"emulator-5554.*--serial",
  ):
    android.select_device(devices)
  with pytest.raises(AndroidError, match="0123ABC is unauthorized"):
    android.select_device(devices, "0123ABC")
  with pytest.raises(AndroidError, match="offline"):
    android.select_device(devices, "emulator-5554")
  with pytest.raises(AndroidError, match="'nope' is not connected"):
    android.select_device(devices, "nope")
  with pytest.raises(AndroidError, match="no Android device found"):
    android.select_device([])


def test_parse_device_state_outputs():
  governors = (
      "/sys/devices/system/cpu/cpu0/cpufreq/scaling_governor:"
      "schedutil\n/sys/devices/system/cpu/cpu7/cpufreq/"
      "scaling_governor:performance\n"
  )
  assert android.parse_per_item(governors, r"cpu\d+") == {
      "cpu0": "schedutil",
      "cpu7": "performance",
  }
  thermal = (
      "/sys/class/thermal/thermal_zone0/type:battery\n"
      "/sys/class/thermal/thermal_zone10/type:cpu-1-0\n"
      "/sys/class/thermal/thermal_zone0/temp:31200\n"
      "/sys/class/thermal/thermal_zone10/temp:45\n"
      "/sys/class/thermal/thermal_zone2/temp:oops\n"
  )
  assert android.parse_thermal(thermal) == [
      {"zone": "thermal_zone0", "type": "battery", "temp_c": 31.2},
      {"zone": "thermal_zone2", "type": None, "temp_c": None},
      {"zone": "thermal_zone10", "type": "cpu-1-0", "temp_c": 45},
  ]
  battery = android.parse_battery(fixture("dumpsys_battery.txt"))
  assert battery == {
      "level": 85,
      "temperature_c": 31.2,
      "status": "charging",
      "powered": ["usb"],
  }
  assert android.parse_battery("Permission denial") is None


# --- the harness with a fake adb ----------------------------------------------


class FakeAdb:
  """Answers adb argv lists like a phone would; records every call."""

  def __init__(
      self,
      devices="List of devices attached\nR58M123\tdevice\n",
      binary_present=True,
      output=fixture("benchmark_model_classic.txt"),
      bench_rc=0,
      readable_sysfs=True,
  ):
    self.devices = devices
    self.binary_present = binary_present
    self.output = output
    self.bench_rc = bench_rc
    self.readable_sysfs = readable_sysfs
    self.calls = []

  def __call__(self, argv):
    self.calls.append(list(argv))
    args = list(argv[1:])
    if args == ["devices"]:
      return CommandResult(0, self.devices, "")
    assert args[:2] == ["-s", "R58M123"], args
    args = args[2:]
    if args[0] == "push":
      if args[-1] == android.DEVICE_BINARY:
        self.binary_present = True
      return CommandResult(0, f"{args[1]}: 1 file pushed\n", "")
    assert args[0] == "shell" and len(args) == 2, args
    cmd = args[1]
    if "benchmark_model --graph" in cmd:
      if not self.binary_present:
        return CommandResult(127, "", f"{cmd.split()[0]}: not found\n")
      return CommandResult(self.bench_rc, self.output, "")
    if cmd.startswith("[ -x"):
      return CommandResult(
          0, "present\n" if self.binary_present else "missing\n", ""
      )
    answers = {
        "getprop ro.product.model": "Pixel 4\n",
        "getprop ro.build.version.release": "13\n",
        "dumpsys battery": fixture("dumpsys_battery.txt"),
    }
    if cmd in answers:
      return CommandResult(0, answers[cmd], "")
    if cmd.startswith("grep . /sys/devices") and self.readable_sysfs:
      leaf = cmd.split("/")[-1]
      value = "schedutil" if leaf == "scaling_governor" else "1804800"
      return CommandResult(
          0,
          "".join(
              f"/sys/devices/system/cpu/cpu{i}/cpufreq/{leaf}:{value}\n"
              for i in range(2)
          ),
          "",
      )
    if cmd.startswith("grep . /sys/class/thermal") and self.readable_sysfs:
      return CommandResult(
          0,
          "/sys/class/thermal/thermal_zone0/type:cpu\n"
          "/sys/class/thermal/thermal_zone0/temp:41000\n",
          "",
      )
    if cmd.startswith(("chmod", "rm -f")):
      return CommandResult(0, "", "")
    return CommandResult(1, "", "grep: Permission denied\n")


@pytest.fixture
def fake_adb_on_path(tmp_path, monkeypatch):
  """An executable named adb on PATH (never run: the runner is fake)."""
  bin_dir = tmp_path / "bin"
  bin_dir.mkdir()
  adb = bin_dir / "adb"
  adb.write_text("#!/bin/sh\nexit 99\n")
  adb.chmod(adb.stat().st_mode | stat.S_IXUSR)
  monkeypatch.setenv("PATH", str(bin_dir))
  return str(adb)


@pytest.fixture
def model_file(tmp_path):
  path = tmp_path / "my model.tflite"
  path.write_bytes(b"\0\0\0\0TFL3" + b"\0" * 32)
  return str(path)


def test_benchmark_on_device(fake_adb_on_path, model_file):
  fake = FakeAdb()
  r = android.benchmark_on_device(
      model_file, threads=4, runs=50, warmup=10, cpu_mask="f0", runner=fake
  )
  assert r["avg_ms"] == pytest.approx(5.89045)
  assert (r["min_ms"], r["max_ms"], r["std_ms"]) == pytest.approx(
      (5.798, 6.210, 0.067)
  )
  assert r["median_ms"] is None and r["init_ms"] == pytest.approx(3.134)
  assert r["first_ms"] == pytest.approx(9.42)
  assert (r["runs"], r["requested_runs"], r["warmup"], r["threads"]) == (
      170,
      50,
      10,
      4,
  )
  assert r["serial"] == "R58M123" and r["cpu_mask"] == "f0"
  dev = r["device"]
  assert dev["model"] == "Pixel 4" and dev["android"] == "13"
  assert dev["governors"] == {"cpu0": "schedutil", "cpu1": "schedutil"}
  assert dev["cpu_freq_khz"] == {"cpu0": 1804800, "cpu1": 1804800}
  assert dev["thermal"] == [
      {"zone": "thermal_zone0", "type": "cpu", "temp_c": 41.0}
  ]
  assert dev["battery"]["level"] == 85
  assert r["device_after"]["thermal"][0]["temp_c"] == 41.0
  # Every call goes through adb with the serial, and the remote model name
  # is sanitised; the benchmark runs pinned under taskset.
  bench = [c for c in fake.calls if "benchmark_model --graph" in c[-1]]
  assert len(bench) == 1
  assert shlex.split(bench[0][-1]) == [
      "taskset",
      "f0",
      android.DEVICE_BINARY,
      "--graph=/data/local/tmp/gram_jax_my_model.tflite",
      "--num_threads=4",
      "--num_runs=50",
      "--warmup_runs=10",
      "--use_xnnpack=true",
  ]
  assert r["command"] == bench[0][-1]
  assert ["push", model_file, "/data/local/tmp/gram_jax_my_model.tflite"] in [
      c[3:] for c in fake.calls
  ]
  assert all(c[0] == fake_adb_on_path for c in fake.calls)


def test_missing_device_values_are_null(fake_adb_on_path, model_file):
  r = android.benchmark_on_device(
      model_file,
      runner=FakeAdb(
          readable_sysfs=False, output=fixture("benchmark_model_litert.txt")
      ),
  )
  assert r["device"]["governors"] is None
  assert r["device"]["thermal"] is None
  assert r["device"]["cpu_freq_khz"] is None
  assert r["median_ms"] == pytest.approx(0.104)
  assert r["runs"] == 9326


def test_benchmark_binary_is_pushed(fake_adb_on_path, model_file, tmp_path):
  binary = tmp_path / "android_aarch64_benchmark_model"
  binary.write_bytes(b"\x7fELF")
  fake = FakeAdb(binary_present=False)
  android.benchmark_on_device(
      model_file, benchmark_binary=str(binary), runner=fake
  )
  args = [c[3:] for c in fake.calls if len(c) > 3]
  assert ["push", str(binary), android.DEVICE_BINARY] in args
  assert ["shell", f"chmod 755 {android.DEVICE_BINARY}"] in args


def test_no_adb_on_path(tmp_path, monkeypatch, model_file):
  monkeypatch.setenv("PATH", str(tmp_path))
  with pytest.raises(
      AndroidError,
      match=(
          "adb: not found on PATH; install "
          "Android platform-tools.*apt-get install adb"
      ),
  ):
    android.benchmark_on_device(model_file, runner=FakeAdb())


def test_no_device(fake_adb_on_path, model_file):
  with pytest.raises(AndroidError, match="no Android device found"):
    android.benchmark_on_device(
        model_file, runner=FakeAdb(devices="List of devices attached\n\n")
    )


def test_several_devices_need_a_serial(fake_adb_on_path, model_file):
  devices = "List of devices attached\nR58M123\tdevice\nXYZ\tdevice\n"
  with pytest.raises(
      AndroidError,
      match=r"several devices are connected "
      r"\(R58M123 \(device\), XYZ \(device\)\); choose one "
      "with --serial",
  ):
    android.benchmark_on_device(model_file, runner=FakeAdb(devices=devices))
  r = android.benchmark_on_device(
      model_file, serial="R58M123", runner=FakeAdb(devices=devices)
  )
  assert r["serial"] == "R58M123"


def test_unauthorized_device(fake_adb_on_path, model_file):
  with pytest.raises(AndroidError, match="unauthorized: unlock it"):
    android.benchmark_on_device(
        model_file,
        runner=FakeAdb(
            devices="List of devices attached\nR58M123\tunauthorized\n"
        ),
    )


def test_missing_benchmark_binary(fake_adb_on_path, model_file, tmp_path):
  with pytest.raises(
      AndroidError,
      match=(
          "benchmark_model: not found at "
          "/data/local/tmp/benchmark_model.*android_aarch64.*"
          "--benchmark-binary"
      ),
  ):
    android.benchmark_on_device(
        model_file, runner=FakeAdb(binary_present=False)
    )
  with pytest.raises(AndroidError, match="no such file.*--benchmark-binary"):
    android.benchmark_on_device(
        model_file, runner=FakeAdb(), benchmark_binary=str(tmp_path / "nope")
    )


def test_failed_benchmark_run(fake_adb_on_path, model_file):
  fake = FakeAdb(output=fixture("benchmark_model_failed.txt"), bench_rc=1)
  with pytest.raises(
      AndroidError,
      match=r"benchmark_model failed on R58M123 "
      r"\(exit 1\): Failed to mmap model",
  ):
    android.benchmark_on_device(model_file, runner=fake)
  # The pushed model is removed even when the run fails.
  assert fake.calls[-1][3:] == [
      "shell",
      "rm -f /data/local/tmp/gram_jax_my_model.tflite",
  ]


def test_missing_model_file(fake_adb_on_path, tmp_path):
  with pytest.raises(AndroidError, match="no such model file"):
    android.benchmark_on_device(str(tmp_path / "x.tflite"), runner=FakeAdb())


def test_latency_command_android_errors_are_one_line(
    tmp_path, monkeypatch, model_file, capsys
):
  monkeypatch.setenv("PATH", str(tmp_path))
  rc = main(["latency", model_file, "--android", "--serial", "R58M123"])
  err = capsys.readouterr().err
  assert rc == 2 and len(err.strip().splitlines()) == 1
  assert "install Android platform-tools" in err


def test_subprocess_runner_without_the_program():
  with pytest.raises(AndroidError, match="not found"):
    android.subprocess_runner([os.path.join("/nonexistent", "adb"), "devices"])
  r = android.subprocess_runner(["sh", "-c", "echo out; echo err >&2; exit 3"])
  assert r == CommandResult(3, "out\n", "err\n")
