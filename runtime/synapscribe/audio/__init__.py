"""Audio in one place: what a recording is (`formats.sniff`), how long it is (`probe`, with `webm`
and `mp4` for what browsers record), the frames of an MP3 (`frames`) and the text generated speech
carries (`tags`).

One answer per format for every part: the edge's validation Lambda, AgentCore, the audio
generator and the smoke test all ask this package. It imports only the standard library and
mutagen, because the edge's Lambda bundle carries nothing else
(cdk/synapscribe_cdk/bundling.py LAMBDA_DEPENDENCIES); converting and cutting (ffmpeg) stay in
AgentCore (`synapscribe.agentcore.media`).
"""
