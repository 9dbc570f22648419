"""From scans to the model's input: cameras, the render cache, rendered and labelled views as
tensors."""
