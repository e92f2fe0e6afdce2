"""One row of `tarun bench` in PyTorch: the same network, width, batch and thread count.

Usage:
  torch_bench.py ARCH WIDTH BATCH STEPS THREADS [DEVICE [VARIANT]]
      prints JSON with images/second of an AdamW training step and of eval-mode inference
      (median of STEPS timed steps after the warm-up);
  torch_bench.py --serve ARCH WIDTH BATCH THREADS [DEVICE [VARIANT]]
      builds the row, then answers one line per command read from stdin: `warmup` (the
      variant's warm-up steps of each kind), `train N` or `infer N` (N timed steps), each
      answered with {"times": [seconds, ...], "peak_mb": peak resident set of this process}, or
      with {"error": "why"} once the variant has failed (every later command gets the same);
      EOF ends it. `tarun bench` drives one such process per variant and interleaves their
      steps with its own, round by round, so that all see the same machine state.

VARIANT is how PyTorch runs the network:
  eager          (default) PyTorch's default: eager mode, NCHW (contiguous) tensors;
  channels_last  eager mode with the model and the input in `torch.channels_last` (NHWC) memory
                 format, which PyTorch recommends for convolutions on CPUs (oneDNN's blocked
                 layouts without reorders between layers);
  compile        `torch.compile(model)`: TorchDynamo + the default Inductor backend (C++/OpenMP
                 kernels on a CPU, so a C++ compiler is needed), default mode, NCHW tensors. Its
                 warm-up runs two steps of each kind (the second train step after an inference
                 step catches the recompilation for the train/eval switch), so compilation is
                 never timed. A failure (no compiler, an unsupported op) is answered as an error,
                 not raised.
Every variant trains with the same step (forward, cross-entropy, backward, eager AdamW step: the
optimizer is not compiled) and infers under `torch.no_grad()` in eval mode.

The networks are torchvision's with tarun's changes (CIFAR stem for ResNet-18, 10 classes) and
channel counts scaled by WIDTH the way tarun scales them. DEVICE is `cpu` (default) or `cuda:N`
(tarun's device names are PyTorch's); on a GPU every timed step ends with a synchronisation.
"""

import gc
import json
import statistics
import sys
import time
import traceback

import torch
import torch.nn as nn
import torchvision


def scale(c, w):
    return max(1, int(c * w + 0.5))


def resnet18(width):
    from torchvision.models.resnet import BasicBlock, ResNet

    class Narrow(ResNet):
        def __init__(self):
            super().__init__(BasicBlock, [2, 2, 2, 2], num_classes=10)
            w = [scale(c, width) for c in (64, 128, 256, 512)]
            self.inplanes = w[0]
            self.conv1 = nn.Conv2d(3, w[0], 3, 1, 1, bias=False)
            self.bn1 = nn.BatchNorm2d(w[0])
            self.maxpool = nn.Identity()
            self.layer1 = self._make_layer(BasicBlock, w[0], 2)
            self.layer2 = self._make_layer(BasicBlock, w[1], 2, stride=2)
            self.layer3 = self._make_layer(BasicBlock, w[2], 2, stride=2)
            self.layer4 = self._make_layer(BasicBlock, w[3], 2, stride=2)
            self.fc = nn.Linear(w[3], 10)

    return Narrow()


def vgg11_bn(width):
    cfg = [64, "M", 128, "M", 256, 256, "M", 512, 512, "M", 512, 512, "M"]
    layers, c_in = [], 3
    for v in cfg:
        if v == "M":
            layers.append(nn.MaxPool2d(2, 2))
        else:
            c = scale(v, width)
            layers += [nn.Conv2d(c_in, c, 3, padding=1), nn.BatchNorm2d(c), nn.ReLU(True)]
            c_in = c
    hidden = scale(4096, width)
    model = torchvision.models.vgg11_bn(num_classes=10)
    model.features = nn.Sequential(*layers)
    model.classifier = nn.Sequential(
        nn.Linear(c_in * 49, hidden), nn.ReLU(True), nn.Dropout(),
        nn.Linear(hidden, hidden), nn.ReLU(True), nn.Dropout(), nn.Linear(hidden, 10))
    return model


def mobilenet_v2(width):
    return torchvision.models.mobilenet_v2(num_classes=10, width_mult=width)


def timed(steps, step):
    times = []
    for _ in range(steps):
        t0 = time.perf_counter()
        step()
        times.append(time.perf_counter() - t0)
    return times


VARIANTS = ("eager", "channels_last", "compile")


def build(arch, width, batch, threads, device, variant="eager"):
    """The model and its two steps, run the way VARIANT says."""
    if variant not in VARIANTS:
        raise SystemExit(f"torch_bench.py: unknown variant {variant!r} (one of {', '.join(VARIANTS)})")
    device = torch.device(device)
    torch.set_num_threads(threads)
    model = {"resnet18": resnet18, "vgg11_bn": vgg11_bn, "mobilenet_v2": mobilenet_v2}[arch](width)
    model = model.to(device)
    x = torch.randn(batch, 3, 32, 32, device=device)
    if variant == "channels_last":
        model = model.to(memory_format=torch.channels_last)
        x = x.contiguous(memory_format=torch.channels_last)
    opt = torch.optim.AdamW(model.parameters(), lr=1e-4)
    y = torch.arange(batch, device=device) % 10
    loss_fn = nn.CrossEntropyLoss()
    forward = torch.compile(model) if variant == "compile" else model

    def train_step():
        model.train()
        opt.zero_grad(set_to_none=True)
        loss_fn(forward(x), y).backward()
        opt.step()
        if device.type == "cuda":
            torch.cuda.synchronize(device)

    def infer_step():
        model.eval()
        with torch.no_grad():
            forward(x).sum().item()

    return train_step, infer_step


def warmup(train_step, infer_step, variant):
    """One step of each kind; two for `compile`, whose first steps compile (one graph per mode)."""
    for _ in range(2 if variant == "compile" else 1):
        train_step()
        infer_step()


def peak_mb():
    """This process's peak resident set: VmHWM, which starts afresh at exec. (getrusage's
    ru_maxrss does not: Linux carries the parent's peak across fork and exec, so a PyTorch started
    by a tarun that had just trained VGG-11-BN would report tarun's 3 GB.)"""
    try:
        with open("/proc/self/status") as f:
            for line in f:
                if line.startswith("VmHWM:"):
                    return int(line.split()[1]) / 1024
    except OSError:
        pass
    return None


def reset_peak():
    """Starts the peak afresh from what is resident now (as tarun does for its rows), so that the
    full-size torchvision VGG built and discarded by vgg11_bn() does not count."""
    gc.collect()
    try:
        with open("/proc/self/clear_refs", "w") as f:
            f.write("5")
    except OSError:
        pass


def failure(err):
    """An error's one-line reason (its type and the message's first line), the trace to stderr."""
    traceback.print_exc(file=sys.stderr)
    lines = str(err).strip().splitlines()
    reason = f"{type(err).__name__}: {lines[0] if lines else ''}".strip().rstrip(":")
    return reason[:300]


def serve(args):
    arch, width, batch, threads = args[0], float(args[1]), int(args[2]), int(args[3])
    device = args[4] if len(args) > 4 else "cpu"
    variant = args[5] if len(args) > 5 else "eager"
    error = None
    try:
        train_step, infer_step = build(arch, width, batch, threads, device, variant)
    except Exception as err:  # noqa: BLE001 - any failure makes the column unavailable
        error = failure(err)
    reset_peak()
    for line in sys.stdin:
        cmd = line.split()
        if not (cmd == ["warmup"] or (len(cmd) == 2 and cmd[0] in ("train", "infer"))):
            raise SystemExit(f"torch_bench.py: unknown command {line!r}")
        if error is None:
            try:
                if cmd == ["warmup"]:
                    warmup(train_step, infer_step, variant)
                    times = []
                else:
                    times = timed(int(cmd[1]), train_step if cmd[0] == "train" else infer_step)
            except Exception as err:  # noqa: BLE001
                error = failure(err)
        if error is not None:
            print(json.dumps({"error": error}), flush=True)
        else:
            print(json.dumps({"times": times, "peak_mb": peak_mb()}), flush=True)


def main():
    if sys.argv[1] == "--serve":
        return serve(sys.argv[2:])
    arch, width, batch, steps, threads = sys.argv[1], float(sys.argv[2]), int(sys.argv[3]), int(sys.argv[4]), int(sys.argv[5])
    device = sys.argv[6] if len(sys.argv) > 6 else "cpu"
    variant = sys.argv[7] if len(sys.argv) > 7 else "eager"
    train_step, infer_step = build(arch, width, batch, threads, device, variant)
    warmup(train_step, infer_step, variant)
    rates = {}
    for name, step in (("train", train_step), ("infer", infer_step)):
        rates[f"{name}_images_per_s"] = batch / statistics.median(timed(max(1, steps), step))
    print(json.dumps(rates))


if __name__ == "__main__":
    main()
