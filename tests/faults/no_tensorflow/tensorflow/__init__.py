raise ImportError("the fault tests forbid importing TensorFlow here")
