"""The calibration corpus: the field's standard architectures, re-implemented compactly at tiny
scale with their standard init and training recipe, healthy and with injected faults.

``benchmarks/calibration.py`` runs it and prints false alarms and recall; the tests run a fast
subset. Layout::

    tasks.py        learnable synthetic tasks (smooth images, upsampled digits, Markov-chain language)
    layers.py       conv-BN-act, squeeze-excitation, torchvision/pycls inits
    residual.py     LeNet-5, VGG-11-BN, ResNet-18/50, PreAct-ResNet, SE-ResNet, RegNet-X
    mobile.py       MobileNet v1/v2, ShuffleNetV2, EfficientNet-style MBConv
    multibranch.py  DenseNet-BC, Inception, PNASNet-like separable cells
    transformers.py GPT-2, BERT (+ pooler, classifier), Llama, ViT
    recurrent.py    2-layer LSTM / GRU / RNN language models
    heldout.py      held-out architectures (ResNeXt, ConvNeXt, MLP-Mixer, Wide ResNet, torch's
                    TransformerEncoder, TCN; plus the RNN LM)
    registry.py     Architecture, Recipe, ARCHITECTURES
    faults.py       Case, FAULTS, INJECTIONS (fault -> architectures -> expected codes)
    runner.py       run_case: checkup + training under watch() + diagnose
"""
from .faults import FAULTS, INJECTIONS, Injection
from .registry import ARCHITECTURES, HELD_OUT, Architecture, Recipe
from .runner import DEFAULT_STEPS, build_case, run_case

__all__ = ["ARCHITECTURES", "DEFAULT_STEPS", "FAULTS", "HELD_OUT", "INJECTIONS", "Architecture", "Injection",
           "Recipe", "build_case", "run_case"]
