"""Files other tools read: PEFT adapters and Hugging Face base models, vLLM and Ollama
serving configs, mini-swe-agent trajectories (out and in) and SWE-bench predictions."""
