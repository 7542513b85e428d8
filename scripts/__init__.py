"""Release tools: shipping a training run into weights/ (`python -m scripts.ship_image ...`)."""
