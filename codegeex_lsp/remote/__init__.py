"""Remote backends: completions from a server this process talks to over HTTP (no torch here).

`openai` speaks the OpenAI-compatible `/v1/completions` API that vLLM, TGI, Ollama and the
llama.cpp servers expose; `prompt` builds the raw FIM prompt text with our formats without a local
tokenizer. The context stage and post-processing stay in the language server.
"""
