"""One row of `tarun bench` in PyTorch: the same network, width, batch and thread count.

Usage: torch_bench.py ARCH WIDTH BATCH STEPS THREADS [DEVICE]; prints JSON with images/second of an AdamW
training step and of eval-mode inference (median of STEPS timed steps after one warm-up step).
The networks are torchvision's with tarun's changes (CIFAR stem for ResNet-18, 10 classes) and
channel counts scaled by WIDTH the way tarun scales them. DEVICE is `cpu` (default) or `cuda:N`
(tarun's device names are PyTorch's); on a GPU every timed step ends with a synchronisation.
"""

import json
import statistics
import sys
import time

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


def median_rate(batch, steps, step):
    step()
    times = []
    for _ in range(max(1, steps)):
        t0 = time.perf_counter()
        step()
        times.append(time.perf_counter() - t0)
    return batch / statistics.median(times)


def main():
    arch, width, batch, steps, threads = sys.argv[1], float(sys.argv[2]), int(sys.argv[3]), int(sys.argv[4]), int(sys.argv[5])
    device = torch.device(sys.argv[6] if len(sys.argv) > 6 else "cpu")
    torch.set_num_threads(threads)
    model = {"resnet18": resnet18, "vgg11_bn": vgg11_bn, "mobilenet_v2": mobilenet_v2}[arch](width)
    model = model.to(device)
    opt = torch.optim.AdamW(model.parameters(), lr=1e-4)
    x = torch.randn(batch, 3, 32, 32, device=device)
    y = torch.arange(batch, device=device) % 10
    loss_fn = nn.CrossEntropyLoss()

    def train_step():
        model.train()
        opt.zero_grad(set_to_none=True)
        loss_fn(model(x), y).backward()
        opt.step()
        if device.type == "cuda":
            torch.cuda.synchronize(device)

    def infer_step():
        model.eval()
        with torch.no_grad():
            model(x).sum().item()

    out = {"train_images_per_s": median_rate(batch, steps, train_step),
           "infer_images_per_s": median_rate(batch, steps, infer_step)}
    print(json.dumps(out))


if __name__ == "__main__":
    main()
