"""Two-layer recurrent language models (PyTorch's word_language_model example at tiny width):
embedding 64, 2 recurrent layers of 128 with dropout 0.2, Linear decoder; encoder/decoder
``U(-0.1, 0.1)``, the recurrent layers at PyTorch's default ``U(-1/sqrt(h), 1/sqrt(h))``."""
from __future__ import annotations

from torch import nn


class RNNLanguageModel(nn.Module):
    def __init__(self, cell: str = "lstm", vocab: int = 32, emb: int = 64, hidden: int = 128):
        super().__init__()
        rnn_type = {"lstm": nn.LSTM, "gru": nn.GRU, "rnn": nn.RNN}[cell]
        self.encoder, self.drop = nn.Embedding(vocab, emb), nn.Dropout(0.2)
        self.rnn = rnn_type(emb, hidden, num_layers=2, dropout=0.2, batch_first=True)
        self.decoder = nn.Linear(hidden, vocab)
        nn.init.uniform_(self.encoder.weight, -0.1, 0.1)
        nn.init.uniform_(self.decoder.weight, -0.1, 0.1)
        nn.init.zeros_(self.decoder.bias)

    def forward(self, idx):
        out, _ = self.rnn(self.drop(self.encoder(idx)))
        return self.decoder(self.drop(out))
