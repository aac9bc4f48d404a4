"""ResNet-18 ported by hand to tinydl.nn, as a user would: the same class structure and attribute names as
torchvision's, so `load_state_dict(torchvision_model.state_dict())` matches key for key.

Run: python examples/resnet18_port.py  (random torchvision weights; compares with torch CPU)
"""
from __future__ import annotations

import time

import numpy as np

import tinydl
from tinydl import nn


class BasicBlock(nn.Module):
    expansion = 1

    def __init__(self, inplanes, planes, stride=1, downsample=None):
        super().__init__()
        self.conv1 = nn.Conv2d(inplanes, planes, 3, stride, 1, bias=False)
        self.bn1 = nn.BatchNorm2d(planes)
        self.relu = nn.ReLU(inplace=True)
        self.conv2 = nn.Conv2d(planes, planes, 3, 1, 1, bias=False)
        self.bn2 = nn.BatchNorm2d(planes)
        self.downsample = downsample

    def forward(self, x):
        identity = x if self.downsample is None else self.downsample(x)
        out = self.relu(self.bn1(self.conv1(x)))
        out = self.bn2(self.conv2(out))
        return self.relu(out + identity)


class ResNet18(nn.Module):
    def __init__(self, num_classes=1000):
        super().__init__()
        self.inplanes = 64
        self.conv1 = nn.Conv2d(3, 64, 7, 2, 3, bias=False)
        self.bn1 = nn.BatchNorm2d(64)
        self.relu = nn.ReLU(inplace=True)
        self.maxpool = nn.MaxPool2d(3, 2, 1)
        self.layer1 = self._make_layer(64, 2)
        self.layer2 = self._make_layer(128, 2, stride=2)
        self.layer3 = self._make_layer(256, 2, stride=2)
        self.layer4 = self._make_layer(512, 2, stride=2)
        self.avgpool = nn.AdaptiveAvgPool2d((1, 1))
        self.fc = nn.Linear(512, num_classes)

    def _make_layer(self, planes, blocks, stride=1):
        downsample = None
        if stride != 1 or self.inplanes != planes:
            downsample = nn.Sequential(nn.Conv2d(self.inplanes, planes, 1, stride, bias=False), nn.BatchNorm2d(planes))
        layers = [BasicBlock(self.inplanes, planes, stride, downsample)]
        self.inplanes = planes
        layers += [BasicBlock(planes, planes) for _ in range(1, blocks)]
        return nn.Sequential(*layers)

    def forward(self, x):
        x = self.maxpool(self.relu(self.bn1(self.conv1(x))))
        x = self.layer4(self.layer3(self.layer2(self.layer1(x))))
        return self.fc(self.avgpool(x).flatten(1))


def main():
    import torch

    from tinydl.testing import max_error
    from tinydl.interop.torchvision_compat import import_torchvision
    torchvision = import_torchvision()
    torch.manual_seed(0)
    ref = torchvision.models.resnet18().eval()
    model = ResNet18().eval()
    model.load_state_dict(ref.state_dict())
    x = np.random.default_rng(0).standard_normal((1, 3, 224, 224)).astype(np.float32)
    with torch.no_grad():
        expected = ref(torch.from_numpy(x)).numpy()
    got = model(tinydl.tensor(x)).numpy()
    times = []
    for _ in range(5):
        t0 = time.perf_counter()
        model(tinydl.tensor(x)).numpy()
        times.append(time.perf_counter() - t0)
    print(f"adapter: {tinydl.device_info()['adapter']}")
    print(f"kernels per forward: {len(tinydl.debug.last_kernels())}")
    print(f"max abs error vs torch: {max_error(got, expected)[0]:.2e}")
    print(f"median forward: {np.median(times) * 1e3:.1f} ms")


if __name__ == "__main__":
    main()
