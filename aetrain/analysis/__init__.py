"""What is done with a trained model: evaluation, sampling, projections, pictures, serving export."""
