"""`synapscribe ami`: the GPU host image's pipeline, one step at a time.

bake -> verify -> promote --to dev -> rollout dev -> promote --to prod -> rollout prod, plus
rollback ENV and prune. Each step reads the state the previous one left on the image (its tags,
`tags.py`) and on the environments' channels (SSM parameters, `channels.py`), so a person and the
weekly CodeBuild project (cdk: SynapScribe-ImagePipeline) run the same commands, and a step run
twice does its work once.
"""
