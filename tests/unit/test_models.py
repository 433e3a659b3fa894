"""Training models as numbers: parameter counts, DDP buckets, and what a MoE layer sends."""
from cluster.models import buckets, model


def test_vgg16_and_gpt2_medium_have_their_published_sizes():
    assert round(model("vgg16").params / 1e6, 1) == 138.4 and round(model("vgg16").flops / 1e9) == 31
    assert 350e6 < model("gpt2-medium").params < 360e6


def test_buckets_hold_every_layer_once_in_backward_order_with_enough_parameters():
    m = model("vgg16")
    groups = buckets(m, 25 * 2**20 // 4)
    assert [l for g in groups for l in g] == list(reversed(m.layers))
    assert all(sum(l.params for l in g) >= 25 * 2**20 // 4 for g in groups[:-1])


def test_moe_experts_are_sharded_not_allreduced_and_their_layers_exchange_tokens():
    m = model("moe-small")
    moe = [l for l in m.layers if l.sharded]
    assert len(moe) == 12 and all(l.a2a_bytes == 1024 * 2 * 1024 * 2 for l in moe)   # seq x top-2 x width, bf16
    assert m.synced_params == m.params - sum(l.params for l in moe)
    assert m.params > 15 * m.synced_params          # 16 experts per layer dwarf the dense part
    groups = buckets(m, 25 * 2**20 // 4)
    assert [l for g in groups for l in g] == list(reversed(m.layers))
    assert all(sum(l.synced_params for l in g) >= 25 * 2**20 // 4 for g in groups[:-1])
