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
    sharded: bool = False   # parameters split over the job's GPUs (experts): not allreduced in DDP
    a2a_bytes: int = 0      # bytes one sample sends to other GPUs' experts in the forward pass (dispatch;
                            # the combine brings as many back, and backward does both again)

    @property
    def synced_params(self) -> int:
        """Parameters whose gradients data parallelism allreduces."""
        return 0 if self.sharded else self.params


@dataclass(frozen=True)
class Model:
    name: str
    layers: tuple[Layer, ...]
    sample: str         # what one sample is (for the reader)
    activation_bytes: int = 0   # one sample's activations between two layers, bf16 (0: none split by TP)

    @property
    def params(self) -> int:
        return sum(l.params for l in self.layers)

    @property
    def flops(self) -> float:
        return sum(l.flops for l in self.layers)

    @property
    def synced_params(self) -> int:
        return sum(l.synced_params for l in self.layers)


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
    return Model("gpt2-medium", tuple(layers), f"a sequence of {seq} tokens", seq * width * 2)


def moe_small(seq: int = 1024, experts: int = 16, top_k: int = 2) -> Model:
    """A small MoE decoder (GPT-2-medium's width, 12 blocks): dense attention in every block and
    an expert FFN layer of `experts` experts (each 1024 -> 4096 -> 1024) of which every token uses
    `top_k`. Experts are sharded over the job's GPUs (expert parallelism): tokens reach their
    experts with an all-to-all (dispatch) and come back with another (combine), as activations
    in bf16. FLOPs count the experts a token uses, not all of them."""
    width, vocab = 1024, 50257
    attn = 4 * width * width + 4 * width
    expert = 8 * width * width + 5 * width
    layers = [Layer("embed", vocab * width + seq * width, 0.0)]
    for i in range(12):
        layers.append(Layer(f"attn{i}", attn, seq * (2.0 * attn + 4.0 * seq * width)))
        layers.append(Layer(f"moe{i}", experts * expert, seq * top_k * 2.0 * expert, sharded=True,
                            a2a_bytes=seq * top_k * width * 2))
    layers.append(Layer("head", 0, seq * 2.0 * vocab * width))       # tied to the embedding
    return Model("moe-small", tuple(layers), f"a sequence of {seq} tokens", seq * width * 2)


MODELS = {"vgg16": vgg16, "gpt2-medium": gpt2_medium, "moe-small": moe_small}


def model(name: str) -> Model:
    if name not in MODELS:
        raise ValueError(f"unknown model {name!r} (one of {', '.join(MODELS)})")
    return MODELS[name]()


def buckets(m: Model, bucket_params: int) -> list[list[Layer]]:
    """Layers grouped in backward order (last layer first) into buckets of at least
    `bucket_params` parameters, as DDP groups gradients: a bucket is allreduced as soon as the
    backward pass has produced all of its gradients. Layers without parameters to allreduce
    (none, or experts sharded over the GPUs) join the next."""
    out, current, size = [], [], 0
    for layer in reversed(m.layers):
        current.append(layer)
        size += layer.synced_params
        if size >= bucket_params:
            out.append(current)
            current, size = [], 0
    if current:
        out.append(current)
    return out
