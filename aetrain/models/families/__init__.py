"""Model families from the literature, one module each.

Every module here declares its variant (schema, builder and family side by side) and holds the Keras
code that makes the family what it is: its layers and loss terms, its figures, its sampling. aetrain
finds them by listing this folder, so a new family is one module here and one ``conf/variant/NAME.yaml``.

A module must import without TensorFlow: validating a config imports it. Its Keras code therefore lives
inside functions (``keras_objects()``), and its family registers that code with Keras on request
(:meth:`aetrain.models.family.Family.register_keras_objects`).
"""
