"""Models a training job runs: layers with their parameter counts and forward FLOPs per sample.

Pure numbers (no framework): what a data-parallel step costs in GPU time and in gradient bytes.
FLOPs count a multiply-add as two; backward costs twice the forward (gradients with respect to
inputs and to weights). A GPU's speed is the paper's Table II (PCIe A100: 107 TFLOPS TF32, 220
FP16), of which a step achieves the fraction `mfu` (an assumption, stated where it is used).
"""
from dataclasses import dataclass

GPU_FLOPS = {"tf32": 107e12, "fp16": 220e12}


@dataclass(frozen=True)
class Layer:
    name: str
    params: int
    flops: float        # forward, per sample


@dataclass(frozen=True)
class Model:
    name: str
    layers: tuple[Layer, ...]
    sample: str         # what one sample is (for the reader)

    @property
    def params(self) -> int:
        return sum(l.params for l in self.layers)

    @property
    def flops(self) -> float:
        return sum(l.flops for l in self.layers)


def _conv(name: str, size: int, c_in: int, c_out: int, k: int = 3) -> Layer:
    return Layer(name, c_in * c_out * k * k + c_out, 2.0 * size * size * c_out * c_in * k * k)


def _fc(name: str, n_in: int, n_out: int) -> Layer:
    return Layer(name, n_in * n_out + n_out, 2.0 * n_in * n_out)


def vgg16() -> Model:
    """VGG16 on 224x224 images: 138.4 M parameters, 31 GFLOPs forward per image."""
    layers, c_in, size = [], 3, 224
    for block, (width, convs) in enumerate(((64, 2), (128, 2), (256, 3), (512, 3), (512, 3)), start=1):
        for i in range(1, convs + 1):
            layers.append(_conv(f"conv{block}_{i}", size, c_in, width))
            c_in = width
        size //= 2
    layers += [_fc("fc6", 512 * 7 * 7, 4096), _fc("fc7", 4096, 4096), _fc("fc8", 4096, 1000)]
    return Model("vgg16", tuple(layers), "a 224x224 image")


def gpt2_medium(seq: int = 1024) -> Model:
    """A GPT-2-medium-like decoder: 24 blocks of width 1024 (~355 M parameters), a sequence of
    `seq` tokens per sample; FLOPs 2 x parameters per token plus attention's 4 x seq x width."""
    width, vocab = 1024, 50257
    block_params = 12 * width * width + 13 * width
    layers = [Layer("embed", vocab * width + seq * width, 0.0)]
    layers += [Layer(f"block{i}", block_params, seq * (2.0 * block_params + 4.0 * seq * width)) for i in range(24)]
    layers.append(Layer("head", 0, seq * 2.0 * vocab * width))       # tied to the embedding
    return Model("gpt2-medium", tuple(layers), f"a sequence of {seq} tokens")


MODELS = {"vgg16": vgg16, "gpt2-medium": gpt2_medium}


def model(name: str) -> Model:
    if name not in MODELS:
        raise ValueError(f"unknown model {name!r} (one of {', '.join(MODELS)})")
    return MODELS[name]()


def buckets(m: Model, bucket_params: int) -> list[list[Layer]]:
    """Layers grouped in backward order (last layer first) into buckets of at least
    `bucket_params` parameters, as DDP groups gradients: a bucket is allreduced as soon as the
    backward pass has produced all of its gradients. Layers without parameters join the next."""
    out, current, size = [], [], 0
    for layer in reversed(m.layers):
        current.append(layer)
        size += layer.params
        if size >= bucket_params:
            out.append(current)
            current, size = [], 0
    if current:
        out.append(current)
    return out
