"""Code samples for the legality heuristics, written for these tests in the shapes the
records use (sliding-window scoring into loss_sum, chunked TTT, SLOT deltas); never run."""

HEADER = """import os, math
import torch
import torch.nn.functional as F

class Hyperparameters:
    slot_enabled = bool(int(os.environ.get("SLOT_ENABLED", "1")))
    ttt_epochs = int(os.environ.get("TTT_EPOCHS", 3))
    chunk = int(os.environ.get("TTT_CHUNK_TOKENS", 32768))
"""

SCORE_FN = """
def eval_windows(args, model, val_tokens, stride):
    loss_sum = torch.zeros((), dtype=torch.float64)
    count = 0
    with torch.inference_mode():
        for ws in range(0, val_tokens.numel() - 1, stride):
            seg = val_tokens[ws:ws + 2049]
            nll = model.nll(seg[:-1], seg[1:])
            loss_sum += nll[-stride:].sum()
            count += stride
    return (loss_sum / count).item()
"""

LEGAL_TTT = (
    HEADER
    + SCORE_FN
    + """
def eval_score_first_ttt(args, model, val_tokens):
    opt = torch.optim.SGD(model.parameters(), lr=0.002, momentum=0.9)
    loss_sum = torch.zeros((), dtype=torch.float64)
    n_chunks = (val_tokens.numel() - 1) // args.chunk
    for ci in range(n_chunks):
        part = val_tokens[ci * args.chunk:(ci + 1) * args.chunk + 1]
        with torch.inference_mode():
            nll = model.nll(part[:-1], part[1:])
        loss_sum += nll.sum()
        if ci == n_chunks - 1:
            continue
        for _ in range(args.ttt_epochs):
            opt.zero_grad()
            loss = model.nll(part[:-1], part[1:]).mean()
            loss.backward()
            opt.step()
    return loss_sum.item()

def main():
    args = Hyperparameters()
    model = build()
    val_tokens = load_validation_tokens(args)
    print(eval_score_first_ttt(args, model, val_tokens))
"""
)

LEGAL_PHASED = (
    HEADER
    + """
def global_sgd_on_scored(args, model, val_tokens, upto):
    opt = torch.optim.SGD(model.parameters(), lr=0.001)
    for start in range(0, upto, 2048):
        x = val_tokens[start:start + 2049]
        opt.zero_grad()
        model.nll(x[:-1], x[1:]).mean().backward()
        opt.step()

def accumulate_bpb(nll, loss_sum):
    loss_sum += nll.sum()

def eval_phased(args, model, val_data):
    tokens = val_data.val_tokens
    loss_sum = torch.zeros((), dtype=torch.float64)
    done = 0
    for doc in range(100):
        x = tokens[doc * 512:(doc + 1) * 512 + 1]
        with torch.no_grad():
            nll = model.nll(x[:-1], x[1:])
            accumulate_bpb(nll, loss_sum)
        done += 512
        if doc % 25 == 24:
            global_sgd_on_scored(args, model, tokens, done)
    return loss_sum.item()
"""
)

PRE_QUANT_TTT = (
    HEADER
    + SCORE_FN
    + """
def pre_quant_ttt(args, model, val_tokens):
    opt = torch.optim.AdamW(model.parameters(), lr=5e-4)
    for epoch in range(args.ttt_epochs):
        for start in range(0, val_tokens.numel() - 2049, 2048):
            x = val_tokens[start:start + 2049]
            opt.zero_grad()
            loss = model.nll(x[:-1], x[1:]).mean()
            loss.backward()
            opt.step()
    return model.state_dict()

def main():
    args = Hyperparameters()
    model = build()
    val_tokens = load_validation_tokens(args)
    pre = eval_windows(args, model, val_tokens, 64)
    state = pre_quant_ttt(args, model, val_tokens)
    model = quantize(state)
    print(pre, eval_windows(args, model, val_tokens, 64))
"""
)

SLOT = (
    HEADER
    + """
def eval_slot(args, model, val_tokens, stride):
    loss_sum = torch.zeros((), dtype=torch.float64)
    for ws in range(0, val_tokens.numel() - 1, stride):
        seg = val_tokens[ws:ws + 2049]
        x, y = seg[:-1], seg[1:]
        with torch.no_grad():
            hidden = model.hidden(x)
        delta = torch.zeros(1, hidden.size(-1), requires_grad=True)
        opt = torch.optim.AdamW([delta], lr=0.012)
        mask = torch.zeros(y.numel())
        mask[-stride:] = 1.0
        for step in range(24):
            opt.zero_grad()
            nll = F.cross_entropy(model.head(hidden + delta), y, reduction="none")
            ((nll * mask).sum() / mask.sum()).backward()
            opt.step()
        with torch.no_grad():
            nll = F.cross_entropy(model.head(hidden + delta), y, reduction="none")
        loss_sum += nll[-stride:].sum()
    return loss_sum.item()

def main():
    args = Hyperparameters()
    if args.slot_enabled:
        print(eval_slot(args, build(), load_validation_tokens(args), 96))
"""
)

GOLD_BLEND = (
    HEADER
    + """
def eval_with_cache(args, model, val_tokens, counts, alpha=0.3):
    loss_sum = 0.0
    for ws in range(0, val_tokens.numel() - 1, 2048):
        seg = val_tokens[ws:ws + 2049]
        logp = F.log_softmax(model.logits(seg[:-1]), dim=-1)
        target_prob = logp.gather(-1, seg[1:, None]).exp().squeeze(-1)
        ngram_p = counts[seg[:-1], seg[1:]] / counts[seg[:-1]].sum(-1)
        mixed = (1 - alpha) * target_prob + alpha * ngram_p
        loss_sum += -torch.log(mixed).sum()
    return loss_sum
"""
)

FULL_BLEND = (
    HEADER
    + """
def eval_with_cache(args, model, val_tokens, counts, alpha=0.3):
    loss_sum = 0.0
    for ws in range(0, val_tokens.numel() - 1, 2048):
        seg = val_tokens[ws:ws + 2049]
        probs = F.softmax(model.logits(seg[:-1]), dim=-1)
        cache_dist = counts[seg[:-1]] / counts[seg[:-1]].sum(-1, keepdim=True)
        mixed = (1 - alpha) * probs + alpha * cache_dist
        loss_sum += -torch.log(mixed.gather(-1, seg[1:, None])).sum()
    return loss_sum
"""
)

BEST_OF_TWO = (
    HEADER
    + SCORE_FN
    + """
def main():
    args = Hyperparameters()
    val_tokens = load_validation_tokens(args)
    first_bpb = eval_windows(args, build(), val_tokens, 64)
    second_bpb = eval_windows(args, build(), val_tokens, 32)
    print(min(first_bpb, second_bpb))
"""
)

GPTQ_ON_VAL = (
    HEADER
    + """
def collect_hessians(model, tokens):
    return {}

def main():
    args = Hyperparameters()
    val_tokens = load_validation_tokens(args)
    train_tokens = load_train_tokens(args)
    collect_hessians(build(), val_tokens)
"""
)

GPTQ_ON_TRAIN = GPTQ_ON_VAL.replace(
    "collect_hessians(build(), val_tokens)", "collect_hessians(build(), train_tokens)"
)

TRAIN_AT_EVAL = (
    HEADER
    + """
def eval_windows(args, model, val_tokens):
    extra = TokenStream(args.train_files).take(4096)
    loss_sum = 0.0
    for ws in range(0, val_tokens.numel() - 1, 64):
        seg = val_tokens[ws:ws + 2049]
        loss_sum += model.nll(seg[:-1], seg[1:], memory=extra).sum()
    return loss_sum

def train(args, model):
    loader = DistributedTokenLoader(args.train_files)
    opt = torch.optim.AdamW(model.parameters())
    for step in range(10):
        x, y = loader.next_batch()
        model(x, y).backward()
        opt.step()
"""
)

WARMUP_BASE = (
    LEGAL_TTT
    + """
def warmup_compile(args, model, val_tokens):
    opt = torch.optim.SGD(model.parameters(), lr=0.002)
    for warm_step in range(3):
        x = val_tokens[:2049]
        model.nll(x[:-1], x[1:]).mean().backward()
        opt.step()
"""
)

WARMUP_THROWAWAY = (
    LEGAL_TTT
    + """
def warmup_compile(args, model, val_tokens):
    for warm_step in range(3):
        adapter = LoRA(model)
        opt = torch.optim.AdamW(adapter.parameters(), lr=1e-3)
        x = val_tokens[:2049]
        model.nll(x[:-1], x[1:], lora=adapter).mean().backward()
        opt.step()
        del adapter, opt
"""
)

WARMUP_RANDOM = (
    LEGAL_TTT
    + """
def warmup_compile(args, model, val_tokens):
    opt = torch.optim.SGD(model.parameters(), lr=0.002)
    for warm_step in range(3):
        x = torch.randint(0, 1024, (2049,))
        model.nll(x[:-1], x[1:]).mean().backward()
        opt.step()
"""
)

SMEAR = (
    HEADER
    + """
class Smear(torch.nn.Module):
    def forward(self, x, ids):
        g = torch.sigmoid(self.smear_gate(x[:, 1:]))
        return torch.cat([x[:, :1], x[:, 1:] + g * x[:, :-1]], dim=1)

def attend(q, k, v, cu_seqlens):
    return flash_attn_varlen_func(q, k, v, cu_seqlens, cu_seqlens)
"""
)

SMEAR_BOS_FIXED = SMEAR.replace(
    "        g = torch.sigmoid(self.smear_gate(x[:, 1:]))\n",
    "        g = torch.sigmoid(self.smear_gate(x[:, 1:]))\n"
    "        g = g.masked_fill((ids[:, 1:] == self.bos_id).unsqueeze(-1), 0.0)\n",
)

SMEAR_STREAM = SMEAR.split("def attend")[0]

DRIVER_COUNTS_SHARDS = (
    HEADER
    + """
def train_model(args, model):
    opt = torch.optim.AdamW(model.parameters())
    for step in range(10):
        model(*next_batch()).backward()
        opt.step()

def train_and_eval(args, model, val_tokens):
    log(f"train_shards: {len(glob.glob(args.data + '/fineweb_train_*.bin'))}")
    train_model(args, model)
    loss_sum = 0.0
    for ws in range(0, val_tokens.numel() - 1, 64):
        seg = val_tokens[ws:ws + 2049]
        loss_sum += model.nll(seg[:-1], seg[1:]).sum()
    return loss_sum
"""
)
