"""The classification head on top of the base encoder.

all-MiniLM-L6-v2 was trained as a sentence encoder with mean pooling: its [CLS] vector was
never trained to summarise the sentence, and its pooler is absent. A linear head over the
mask-aware mean of the token vectors starts from that trained representation (the
sentence-transformers / SetFit recipe) instead of from an untrained [CLS] pooler.
"""

from __future__ import annotations

import torch
from torch import nn
from transformers import BertModel, BertPreTrainedModel
from transformers.modeling_outputs import SequenceClassifierOutput, TokenClassifierOutput

__all__ = ["CasedTokenClassifier", "MeanPoolingClassifier"]


class MeanPoolingClassifier(BertPreTrainedModel):
    """BERT-family encoder, mean pooling over real tokens, dropout, linear layer to the labels.

    The forward signature and the ``logits`` output match ``BertForSequenceClassification``,
    so optimum exports it with the standard text-classification ONNX config.
    """

    def __init__(self, config) -> None:
        super().__init__(config)
        self.num_labels = config.num_labels
        self.bert = BertModel(config, add_pooling_layer=False)
        self.dropout = nn.Dropout(config.hidden_dropout_prob)
        self.classifier = nn.Linear(config.hidden_size, config.num_labels)
        self.post_init()

    def forward(
        self,
        input_ids: torch.Tensor,
        attention_mask: torch.Tensor,
        token_type_ids: torch.Tensor | None = None,
        labels: torch.Tensor | None = None,
        **_: object,
    ) -> SequenceClassifierOutput:
        hidden = self.bert(input_ids=input_ids, attention_mask=attention_mask,
                           token_type_ids=token_type_ids).last_hidden_state
        mask = attention_mask.unsqueeze(-1).to(hidden.dtype)
        pooled = (hidden * mask).sum(dim=1) / mask.sum(dim=1).clamp(min=1e-9)
        logits = self.classifier(self.dropout(pooled))
        loss = nn.functional.cross_entropy(logits, labels) if labels is not None else None
        return SequenceClassifierOutput(loss=loss, logits=logits)


class CasedTokenClassifier(BertPreTrainedModel):
    """Token classification over an uncased encoder, with each word's shape added back.

    all-MiniLM-L6-v2 lower-cases its input, so "Delaware limited" and "Delaware Limited"
    look the same to it, yet capitalisation is the strongest single cue for a name. Each
    token's word shape (lower, Title, UPPER, mIxed, no letter; see
    ``shared.runtime.tagging.word_shape``) gets a learned vector added to its word
    embedding. The vectors start at zero, so training starts from the unchanged encoder.
    """

    def __init__(self, config) -> None:
        from shared.runtime.tagging import N_SHAPES

        super().__init__(config)
        self.num_labels = config.num_labels
        self.bert = BertModel(config, add_pooling_layer=False)
        self.case_embeddings = nn.Embedding(N_SHAPES, config.hidden_size)
        self.dropout = nn.Dropout(config.hidden_dropout_prob)
        self.classifier = nn.Linear(config.hidden_size, config.num_labels)
        self.post_init()
        nn.init.zeros_(self.case_embeddings.weight)

    def forward(
        self,
        input_ids: torch.Tensor,
        attention_mask: torch.Tensor,
        case_ids: torch.Tensor,
        token_type_ids: torch.Tensor | None = None,
        labels: torch.Tensor | None = None,
        **_: object,
    ) -> TokenClassifierOutput:
        embeds = self.bert.embeddings.word_embeddings(input_ids) + self.case_embeddings(case_ids)
        hidden = self.bert(inputs_embeds=embeds, attention_mask=attention_mask,
                           token_type_ids=token_type_ids).last_hidden_state
        logits = self.classifier(self.dropout(hidden))
        loss = None
        if labels is not None:
            loss = nn.functional.cross_entropy(logits.view(-1, self.num_labels), labels.view(-1), ignore_index=-100)
        return TokenClassifierOutput(loss=loss, logits=logits)
