"""Using a trained model: prediction, test-time augmentation, where models come from and go
(the shipped model, the Hub), export, model cards."""
