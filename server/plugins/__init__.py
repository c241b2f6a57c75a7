"""OpenRouter's plugins that fit a private server: response-healing, file-parser (PDFs, parsed here), and the web
plugins' refusal (they need a hosted upstream)."""
