"""Foundation pieces every layer may use: user-facing errors and safe output paths. Imports nothing of lvlm."""
