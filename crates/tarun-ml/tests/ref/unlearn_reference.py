"""Reference values for crates/tarun-ml/tests/unlearn_methods.rs, computed with PyTorch (CPU).

A linear classifier (4 features, 3 classes, weight W and bias b) stands in for a network: each
baseline's loss, gradient change and optimizer step are written here the way their authors'
code does it (docs/study.md §5.1), and the resulting parameters are printed as Rust arrays.

Run: /tmp/torchcpu/bin/python crates/tarun-ml/tests/ref/unlearn_reference.py
"""

import torch
import torch.nn.functional as F

torch.set_default_dtype(torch.float64)

W0 = torch.tensor([[0.5, -0.25, 0.0, 1.0], [-0.75, 0.5, 0.25, -0.5], [0.125, 0.75, -1.0, 0.25]])
B0 = torch.tensor([0.1, -0.2, 0.0])
XF = torch.tensor([[1.0, 0.5, -0.5, 2.0], [0.25, -1.0, 1.5, 0.5]])
YF = torch.tensor([2, 2])
XR = torch.tensor([[-1.0, 2.0, 0.5, 0.0], [0.5, 0.5, 0.5, 0.5], [2.0, -0.5, -1.0, 1.0]])
YR = torch.tensor([0, 1, 0])


def params():
    return (torch.nn.Parameter(W0.clone()), torch.nn.Parameter(B0.clone()))


def logits(p, x):
    return x @ p[0].T + p[1]


def sgd(p):
    return torch.optim.SGD(p, lr=0.1, momentum=0.9, weight_decay=5e-4)


def show(name, t):
    flat = ", ".join(f"{v:.9e}" for v in t.detach().flatten().tolist())
    print(f"const {name}: [f64; {t.numel()}] = [{flat}];")


def l1_sparse():
    # Jia et al.: loss = CE + gamma_e * ||theta||_1, gamma_e = gamma0 * (1 - e / E); epoch 1 of 4.
    gamma = 0.05 * (1 - 1 / 4)
    p = params()
    opt = sgd(p)
    losses = []
    for x, y in [(XR, YR), (XR[:2], YR[:2])]:
        l1 = torch.cat([q.view(-1) for q in p]).abs().sum()
        loss = F.cross_entropy(logits(p, x), y) + gamma * l1
        opt.zero_grad()
        loss.backward()
        opt.step()
        losses.append(loss)
    show("L1_LOSSES", torch.stack(losses))
    show("L1_W", p[0])
    show("L1_B", p[1])


def distill_kl(s, t, temp):
    # SCRUB's DistillKL: kl_div(log_softmax(s/T), softmax(t/T), sum) * T^2 / batch.
    return F.kl_div(F.log_softmax(s / temp, 1), F.softmax(t / temp, 1), reduction="sum") * temp**2 / s.shape[0]


def scrub():
    temp, alpha, gamma = 4.0, 0.5, 0.99
    teacher = W0.clone(), B0.clone()
    # The student starts from the teacher; a first max step would have a zero KL gradient, so
    # the sequence starts with a min step: min, max, min.
    p = params()
    opt = sgd(p)
    values = []
    for kind, x, y in [("min", XR, YR), ("max", XF, YF), ("min", XR[1:], YR[1:])]:
        s, t = logits(p, x), logits(teacher, x)
        kl = distill_kl(s, t, temp)
        loss = -kl if kind == "max" else gamma * F.cross_entropy(s, y) + alpha * kl
        opt.zero_grad()
        loss.backward()
        opt.step()
        values.append(loss)
    show("SCRUB_LOSSES", torch.stack(values))
    show("SCRUB_W", p[0])
    show("SCRUB_B", p[1])


def salun():
    # Fan et al.: saliency = |sum over forget batches of grad CE|, the top half of all weights
    # (ranked together, ties to the earlier index) is updated; gradients are multiplied by the
    # mask before SGD, whose weight decay still applies to every weight.
    p = params()
    grads = [torch.zeros_like(q) for q in p]
    for x, y in [(XF[:1], YF[:1]), (XF[1:], YF[1:])]:
        for q in p:
            q.grad = None
        F.cross_entropy(logits(p, x), y).backward()
        for g, q in zip(grads, p):
            g += q.grad
    scores = torch.cat([g.abs().view(-1) for g in grads])
    keep = int(scores.numel() * (1 - 0.5))
    order = torch.argsort(-scores, stable=True)
    flat = torch.zeros_like(scores)
    flat[order[:keep]] = 1
    masks = [flat[:12].view(3, 4), flat[12:]]
    show("SALUN_MASK", flat)
    opt = sgd(p)
    # Forget images relabelled (fixed here: 0 and 1), retained images with their own labels.
    x = torch.cat([XF, XR])
    y = torch.tensor([0, 1, 0, 1, 0])
    for _ in range(2):
        loss = F.cross_entropy(logits(p, x), y)
        opt.zero_grad()
        loss.backward()
        for q, m in zip(p, masks):
            q.grad *= m
        opt.step()
    show("SALUN_W", p[0])
    show("SALUN_B", p[1])


l1_sparse()
scrub()
salun()
