"""Helper package for the book "From Scratch: Developing and Fine-Tuning Large Models".

The chapters build each idea step by step and then import the finished, tested version from
here. Modules (import them directly, e.g. ``from llmbook_utils.gpt import GPT``):

- ``profile``: ``get_profile()``, the smoke / cpu / gpu run sizes
- ``device``: ``get_device()``, ``set_seed()``, ``in_colab()``
- ``attention``, ``positional``, ``transformer``, ``gpt``, ``bert``: models written from scratch
- ``hf``: weight maps to and from Hugging Face ``transformers``, ``load_pretrained()``
- ``tokenizers``, ``data``, ``train``, ``metrics``: the rest of the training pipeline
- ``viz``: interactive plotly figures that work in JupyterLab, Colab and the book's website
"""

__version__ = "0.1.0"
