"""On-device latency: TFLite's ``benchmark_model`` on an Android phone.

Drives the real ``adb`` (never through a shell on the host): pushes the
``.tflite`` model (and, if given, the ``benchmark_model`` binary) to
``/data/local/tmp``, records the device state (model, Android release, CPU
governors and frequencies, thermal zones, battery), runs

  taskset <mask> /data/local/tmp/benchmark_model --graph=... \
      --num_threads=N --num_runs=R --warmup_runs=W --use_xnnpack=true

and parses the tool's timing lines. The binary is TFLite's prebuilt
``benchmark_model`` for android_aarch64 (`BENCHMARK_BINARY_URL`), or one
built with ``bazel build -c opt --config=android_arm64
//tensorflow/lite/tools/benchmark:benchmark_model``.

Commands are built by pure functions (`adb_argv`, `benchmark_argv`,
`shell_command`) and outputs parsed by pure functions
(`parse_benchmark_output`, `parse_devices`, ...), so everything but the
phone is testable; `benchmark_on_device` takes an injectable `runner`.
"""

from __future__ import annotations

import os
import re
import shlex
import shutil
import subprocess
from typing import (
    Any,
    Callable,
    Dict,
    List,
    NamedTuple,
    Optional,
    Sequence,
    Tuple,
)

from gram_jax.errors import GramJaxError

DEVICE_DIR = "/data/local/tmp"
DEVICE_BINARY = f"{DEVICE_DIR}/benchmark_model"
BENCHMARK_BINARY_URL = (
    "https://storage.googleapis.com/tensorflow-nightly-public/prod/tensorflow/"
    "release/lite/tools/nightly/latest/android_aarch64_benchmark_model"
)
INSTALL_ADB = (
    "install Android platform-tools (e.g. `apt-get install adb`) "
    "and put adb on PATH"
)
GET_BINARY = (
    "download TFLite's prebuilt benchmark_model for android_aarch64 "
    f"({BENCHMARK_BINARY_URL}) and pass --benchmark-binary PATH"
)

# Shell commands (run on the device) whose outputs make up the device state.
STATE_COMMANDS = {
    "model": "getprop ro.product.model",
    "android": "getprop ro.build.version.release",
    "governors": (
        "grep . /sys/devices/system/cpu/cpu[0-9]*/cpufreq/scaling_governor"
    ),
    "cpu_freq": (
        "grep . /sys/devices/system/cpu/cpu[0-9]*/cpufreq/scaling_cur_freq"
    ),
    "thermal": (
        "grep . /sys/class/thermal/thermal_zone*/type "
        "/sys/class/thermal/thermal_zone*/temp"
    ),
    "battery": "dumpsys battery",
}


class AndroidError(GramJaxError):
  """adb, the phone or benchmark_model is missing or failed."""


class CommandResult(NamedTuple):
  returncode: int
  stdout: str
  stderr: str


Runner = Callable[[List[str]], CommandResult]


def subprocess_runner(
    argv: Sequence[str], *, timeout: float = 900.0
) -> CommandResult:
  """Runs `argv` (no shell) and returns its exit status and output."""
  argv = [str(a) for a in argv]
  try:
    p = subprocess.run(
        argv,
        capture_output=True,
        text=True,
        errors="replace",
        timeout=timeout,
        check=False,
    )
  except FileNotFoundError:
    raise AndroidError(f"{argv[0]}: not found; {INSTALL_ADB}") from None
  except subprocess.TimeoutExpired:
    raise AndroidError(
        f"`{shlex.join(argv)}` did not finish in "
        f"{timeout:.0f} s; check the phone (screen on, not "
        "busy) and run again"
    ) from None
  return CommandResult(p.returncode, p.stdout, p.stderr)


# --- command construction (pure) ----------------------------------------------


def adb_argv(adb: str, serial: Optional[str], *args: str) -> List[str]:
  """``[adb, -s, serial, *args]`` (no ``-s`` when `serial` is None)."""
  return [adb] + (["-s", serial] if serial else []) + [str(a) for a in args]


def benchmark_argv(
    graph: str,
    *,
    binary: str = DEVICE_BINARY,
    threads: int = 1,
    runs: int = 50,
    warmup: int = 10,
    use_xnnpack: bool = True,
    cpu_mask: Optional[str] = None,
) -> List[str]:
  """The on-device argv of one benchmark_model run.

  Args:
    graph: the model's path on the device.
    binary: benchmark_model's path on the device.
    threads: ``--num_threads``.
    runs: ``--num_runs`` (the tool may run more, to last ``--min_secs``).
    warmup: ``--warmup_runs``.
    use_xnnpack: ``--use_xnnpack``; false runs TFLite's own CPU kernels.
    cpu_mask: hex CPU affinity mask (``f0``: cores 4-7), run under
      ``taskset`` to pin the benchmark to chosen cores.

  Returns:
    The argv, for `shell_command`.
  """
  argv = [
      binary,
      f"--graph={graph}",
      f"--num_threads={_pos(threads, 'threads')}",
      f"--num_runs={_pos(runs, 'runs')}",
      f"--warmup_runs={_pos(warmup, 'warmup', 0)}",
      f"--use_xnnpack={'true' if use_xnnpack else 'false'}",
  ]
  if cpu_mask is not None:
    argv = ["taskset", normalize_cpu_mask(cpu_mask)] + argv
  return argv


def shell_command(argv: Sequence[str]) -> str:
  """One quoted command line for ``adb shell`` (which runs it with sh)."""
  return shlex.join(str(a) for a in argv)


def normalize_cpu_mask(mask: str) -> str:
  """``"0xF0"`` -> ``"f0"``; rejects anything but a non-zero hex mask."""
  text = str(mask).strip().lower()
  text = text[2:] if text.startswith("0x") else text
  if not re.fullmatch(r"[0-9a-f]+", text) or int(text, 16) == 0:
    raise AndroidError(
        f"cpu_mask: {mask!r} is not allowed; allowed: a "
        "non-zero hex CPU mask such as f0 (cores 4-7) or 0x3"
    )
  return text.lstrip("0") or "0"


# --- output parsing (pure) ----------------------------------------------------

_NUMBER = r"[-+]?\d+(?:\.\d*)?(?:[eE][-+]?\d+)?"
_SUMMARY = re.compile(
    rf"Inference timings in us: Init: (?P<init>{_NUMBER}), "
    rf"First inference: (?P<first>{_NUMBER}), "
    rf"Warmup \(avg\): (?P<warmup>{_NUMBER}), "
    rf"Inference \(avg\): (?P<inference>{_NUMBER})"
)
# A statistics line, alone or behind a log prefix ("INFO: ", "I tflite  : ");
# not the profiler's "Timings (microseconds): count=..." lines.
_STATS = re.compile(
    r"^\s*(?:[A-Z]+:\s*|[VDIWEF]\s+tflite\s*:\s*)?"
    r"(count=\d+(?:\s+\w+=\S+)*)\s*$"
)


def parse_benchmark_output(text: str) -> Dict[str, Any]:
  """Parses benchmark_model's timing lines (all values in microseconds).

  Reads the summary line (``Inference timings in us: Init: 3134, First
  inference: 9420, Warmup (avg): 6027.1, Inference (avg): 5890.45``) and
  the statistics lines (``count=50 first=... curr=... min=... max=...
  avg=... std=...``, newer tools add ``p5= median= p95=``): the first is
  the warm-up's, the one matching the summary's inference average (else the
  last) the timed runs'.

  Returns:
    ``{"init_us", "first_us", "warmup_avg_us", "inference_avg_us"}`` (None
    when the summary is missing), ``"stats"`` (dict of the timed runs'
    statistics, or None) and ``"warmup_stats"`` (or None).

  Raises:
    AndroidError: neither a summary nor a statistics line is present.
  """
  summary = None
  stats_lines = []
  for line in text.splitlines():
    m = _SUMMARY.search(line)
    if m:
      summary = {k: float(v) for k, v in m.groupdict().items()}
    m = _STATS.match(line)
    if m:
      stats_lines.append(_key_values(m.group(1)))
  if summary is None and not stats_lines:
    raise AndroidError(
        f"benchmark_model printed no timings (last line: {_last_line(text)!r})"
    )
  stats = stats_lines[-1] if stats_lines else None
  if summary is not None:
    for s in stats_lines:
      avg = s.get("avg")
      if avg is not None and abs(avg - summary["inference"]) <= 1e-3 * max(
          1.0, abs(avg)
      ):
        stats = s
  warmup_stats = (
      stats_lines[0]
      if len(stats_lines) > 1 and stats_lines[0] is not stats
      else None
  )
  summary = summary or {}
  return {
      "init_us": summary.get("init"),
      "first_us": summary.get("first"),
      "warmup_avg_us": summary.get("warmup"),
      "inference_avg_us": summary.get("inference"),
      "stats": stats,
      "warmup_stats": warmup_stats,
  }


def parse_devices(text: str) -> List[Tuple[str, str]]:
  """``adb devices`` output -> ``[(serial, state), ...]``."""
  devices = []
  for line in text.splitlines():
    line = line.strip()
    if not line or line.startswith(("List of devices", "*", "adb ")):
      continue
    parts = line.split(None, 1)
    devices.append((parts[0], parts[1].strip() if len(parts) > 1 else "?"))
  return devices


def select_device(
    devices: Sequence[Tuple[str, str]], serial: Optional[str] = None
) -> str:
  """The serial to use; explains no, several, unknown or unusable devices."""
  listed = ", ".join(f"{s} ({st})" for s, st in devices)
  if serial is not None:
    state = dict(devices).get(serial)
    if state is None:
      raise AndroidError(
          f"serial: device {serial!r} is not connected; adb "
          f"sees: {listed or 'no devices'}"
      )
    chosen = (serial, state)
  elif not devices:
    raise AndroidError(
        "no Android device found (adb devices lists none); "
        "connect a phone with USB debugging enabled"
    )
  elif len(devices) > 1:
    raise AndroidError(
        f"several devices are connected ({listed}); choose one with --serial"
    )
  else:
    chosen = devices[0]
  serial, state = chosen
  if state == "unauthorized":
    raise AndroidError(
        f"device {serial} is unauthorized: unlock it, accept "
        "the 'Allow USB debugging' prompt, then run again"
    )
  if state != "device":
    raise AndroidError(
        f"device {serial} is {state!r}, not ready; reconnect "
        "it (or `adb kill-server`) and run again"
    )
  return serial


def parse_per_item(text: str, item: str) -> Dict[str, str]:
  """``grep . <glob>`` output -> ``{"cpu0": value, ...}`` by path component.

  `item` is the regex of the component naming the entry, e.g. ``cpu\\d+``.
  """
  out = {}
  for line in text.splitlines():
    path, sep, value = line.partition(":")
    m = re.search(rf"/({item})/", path)
    if sep and m:
      out[m.group(1)] = value.strip()
  return out


def parse_thermal(text: str) -> List[Dict[str, Any]]:
  """Thermal zones: ``[{"zone", "type", "temp_c"}]`` (millidegrees -> C)."""
  zones: Dict[str, Dict[str, Any]] = {}
  for line in text.splitlines():
    path, sep, value = line.partition(":")
    m = re.search(r"/(thermal_zone\d+)/(type|temp)$", path)
    if not (sep and m):
      continue
    zone = zones.setdefault(
        m.group(1), {"zone": m.group(1), "type": None, "temp_c": None}
    )
    if m.group(2) == "type":
      zone["type"] = value.strip()
    else:
      t = _number(value)
      # sysfs reports millidegrees; a few drivers report degrees.
      zone["temp_c"] = None if t is None else (t / 1000 if abs(t) > 200 else t)
  return sorted(zones.values(), key=lambda z: int(z["zone"][12:]))


def parse_battery(text: str) -> Optional[Dict[str, Any]]:
  """``dumpsys battery`` -> level (%), temperature (C), status, power."""
  fields = {}
  for line in text.splitlines():
    key, sep, value = line.partition(":")
    if sep:
      fields[key.strip()] = value.strip()
  if "level" not in fields:
    return None
  statuses = {
      "1": "unknown",
      "2": "charging",
      "3": "discharging",
      "4": "not charging",
      "5": "full",
  }
  temp = _number(fields.get("temperature", ""))
  return {
      "level": _number(fields.get("level", "")),
      "temperature_c": None if temp is None else temp / 10,
      "status": statuses.get(fields.get("status"), fields.get("status")),
      "powered": [
          k.split()[0].lower()
          for k, v in fields.items()
          if k.endswith(" powered") and v == "true"
      ],
  }


# --- the harness --------------------------------------------------------------


def find_adb(adb: str = "adb") -> str:
  """The path of the `adb` executable; AndroidError when there is none."""
  if os.sep in adb:
    if os.path.isfile(adb) and os.access(adb, os.X_OK):
      return adb
    raise AndroidError(f"{adb}: not an executable; {INSTALL_ADB}")
  found = shutil.which(adb)
  if found is None:
    raise AndroidError(f"{adb}: not found on PATH; {INSTALL_ADB}")
  return found


def device_state(run: Callable[..., CommandResult]) -> Dict[str, Any]:
  """Best-effort device state; values that cannot be read are None.

  `run(*adb_args)` runs one adb command on the chosen device.
  """

  def shell(key):
    try:
      r = run("shell", STATE_COMMANDS[key])
    except AndroidError:
      return ""
    return r.stdout if r.returncode == 0 else ""

  governors = parse_per_item(shell("governors"), r"cpu\d+")
  freqs = parse_per_item(shell("cpu_freq"), r"cpu\d+")
  return {
      "model": shell("model").strip() or None,
      "android": shell("android").strip() or None,
      "governors": governors or None,
      "cpu_freq_khz": {k: _number(v) for k, v in freqs.items()} or None,
      "thermal": parse_thermal(shell("thermal")) or None,
      "battery": parse_battery(shell("battery")),
  }


def benchmark_on_device(
    model_path: str,
    *,
    serial: Optional[str] = None,
    benchmark_binary: Optional[str] = None,
    threads: int = 1,
    runs: int = 50,
    warmup: int = 10,
    use_xnnpack: bool = True,
    cpu_mask: Optional[str] = None,
    adb: str = "adb",
    runner: Optional[Runner] = None,
) -> Dict[str, Any]:
  """Times a .tflite model on an Android phone with benchmark_model.

  Args:
    model_path: the local ``.tflite`` file.
    serial: the device (``adb devices``); needed when several are connected.
    benchmark_binary: a local benchmark_model binary to push; when None it
      must already be at `DEVICE_BINARY` on the device.
    threads: ``--num_threads``.
    runs: ``--num_runs``.
    warmup: ``--warmup_runs``.
    use_xnnpack: ``--use_xnnpack``.
    cpu_mask: hex affinity mask for ``taskset`` (pin to chosen cores).
    adb: the adb executable (name on PATH or path).
    runner: runs one argv and returns a `CommandResult` (default:
      `subprocess_runner`); tests pass a fake.

  Returns:
    A JSON-ready dict: ``avg_ms``, ``min_ms``, ``max_ms``, ``std_ms``,
    ``median_ms`` (None if the tool does not print it), ``first_ms``,
    ``init_ms``, ``warmup_avg_ms``, ``runs`` (timed runs the tool made),
    ``requested_runs``, ``warmup``, ``threads``, ``use_xnnpack``,
    ``cpu_mask``, ``serial``, ``command``, ``device`` (state before the
    run) and ``device_after`` (CPU frequencies and temperatures after it).

  Raises:
    AndroidError: no adb, no usable device, no binary, or a failed run;
      the message says what to do.
  """
  if not os.path.isfile(model_path):
    raise AndroidError(f"{model_path}: no such model file")
  if benchmark_binary is not None and not os.path.isfile(benchmark_binary):
    raise AndroidError(f"{benchmark_binary}: no such file; {GET_BINARY}")
  mask = None if cpu_mask is None else normalize_cpu_mask(cpu_mask)
  remote_model = f"{DEVICE_DIR}/gram_jax_" + re.sub(
      r"[^A-Za-z0-9._-]", "_", os.path.basename(model_path)
  )
  argv = benchmark_argv(
      remote_model,
      threads=threads,
      runs=runs,
      warmup=warmup,
      use_xnnpack=use_xnnpack,
      cpu_mask=mask,
  )
  adb = find_adb(adb)
  runner = runner or subprocess_runner

  listing = runner(adb_argv(adb, None, "devices"))
  if listing.returncode != 0:
    raise AndroidError(f"`adb devices` failed: {_last_line(listing.stderr)}")
  serial = select_device(parse_devices(listing.stdout), serial)

  def run(*args):
    return runner(adb_argv(adb, serial, *args))

  def check(result, what):
    if result.returncode != 0:
      raise AndroidError(
          f"{what} failed on {serial}: "
          f"{_last_line(result.stderr + result.stdout)}"
      )
    return result

  state = device_state(run)
  if benchmark_binary is not None:
    check(
        run("push", benchmark_binary, DEVICE_BINARY),
        f"adb push {benchmark_binary}",
    )
    check(
        run("shell", shell_command(["chmod", "755", DEVICE_BINARY])),
        "chmod of benchmark_model",
    )
  else:
    probe = run(
        "shell",
        f"[ -x {shlex.quote(DEVICE_BINARY)} ] && echo present || echo missing",
    )
    if "present" not in probe.stdout:
      raise AndroidError(
          f"benchmark_model: not found at {DEVICE_BINARY} on "
          f"{serial}; {GET_BINARY}"
      )
  check(run("push", model_path, remote_model), f"adb push {model_path}")
  command = shell_command(argv)
  try:
    result = run("shell", command)
    output = result.stdout + "\n" + result.stderr
    try:
      parsed = parse_benchmark_output(output)
    except AndroidError:
      raise AndroidError(
          f"benchmark_model failed on {serial} (exit "
          f"{result.returncode}): {_last_line(output)}"
      ) from None
    after = device_state(run)
  finally:
    run("shell", shell_command(["rm", "-f", remote_model]))

  stats = parsed["stats"] or {}

  def ms(value):
    return None if value is None else value / 1000.0

  return {
      "avg_ms": ms(stats.get("avg", parsed["inference_avg_us"])),
      "min_ms": ms(stats.get("min")),
      "max_ms": ms(stats.get("max")),
      "std_ms": ms(stats.get("std")),
      "median_ms": ms(stats.get("median")),
      "first_ms": ms(parsed["first_us"]),
      "init_ms": ms(parsed["init_us"]),
      "warmup_avg_ms": ms(parsed["warmup_avg_us"]),
      "runs": int(stats["count"]) if "count" in stats else None,
      "requested_runs": runs,
      "warmup": warmup,
      "threads": threads,
      "use_xnnpack": bool(use_xnnpack),
      "cpu_mask": mask,
      "serial": serial,
      "command": command,
      "device": state,
      "device_after": {
          "cpu_freq_khz": after["cpu_freq_khz"],
          "thermal": after["thermal"],
          "battery": after["battery"],
      },
  }


# --- helpers ------------------------------------------------------------------


def _key_values(text: str) -> Dict[str, float]:
  out = {}
  for item in text.split():
    key, sep, value = item.partition("=")
    number = _number(value)
    if sep and number is not None:
      out[key] = number
  return out


def _number(text: str) -> Optional[float]:
  try:
    value = float(str(text).strip())
  except ValueError:
    return None
  return int(value) if value.is_integer() and abs(value) < 2**53 else value


def _last_line(text: str) -> str:
  lines = [line.strip() for line in text.splitlines() if line.strip()]
  return lines[-1][:300] if lines else "(no output)"


def _pos(value, field: str, minimum: int = 1) -> int:
  if isinstance(value, bool) or not isinstance(value, int) or value < minimum:
    raise AndroidError(
        f"{field}: {value!r} is not allowed; allowed: an integer >= {minimum}"
    )
  return value
