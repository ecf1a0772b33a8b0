"""The whole stack on one machine: moto, the local SageMaker, a function runner, an API gateway."""
