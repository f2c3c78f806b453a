"""The TTS service: OpenAI-shaped speech API over gTTS, with espeak-ng as the offline engine."""
