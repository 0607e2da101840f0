"""The decoders' names and constructor arguments, read without importing Keras.

`keras-dualobj generate` makes its decoder flags from the decoder classes'
signatures while it parses its arguments, before Keras is imported (a mistyped flag
answers at once): the signatures are read from the source with `ast`, so the
classes stay the one home of every default.
"""

import ast
import importlib.util

# name -> (module, class); `keras_dualobj.decoders.get` builds the classes from it.
DECODER_CLASSES = {
    "ar": ("keras_dualobj.decoders.ar", "ARDecoder"),
    "md": ("keras_dualobj.decoders.md", "MDDecoder"),
    "speculative": ("keras_dualobj.decoders.speculative", "SpeculativeDecoder"),
}


def decoder_arguments():
    """`{name: [(argument, default)]}`: each decoder's constructor arguments, in order.

    Example:
    >>> decoder_arguments()["speculative"][:2]
    [('draft_length', 4), ('draft_steps', 1)]
    """
    return {
        name: _init_arguments(module, class_name)
        for name, (module, class_name) in DECODER_CLASSES.items()
    }


def _init_arguments(module, class_name):
    path = importlib.util.find_spec(module).origin
    with open(path, encoding="utf-8") as file:
        tree = ast.parse(file.read(), path)
    cls = next(
        node for node in tree.body if isinstance(node, ast.ClassDef) and node.name == class_name
    )
    init = next(node for node in cls.body if isinstance(node, ast.FunctionDef)
                and node.name == "__init__")
    arguments = init.args.args[1:]  # not `self`
    defaults = [ast.literal_eval(value) for value in init.args.defaults]
    # Every decoder argument has a default (a decoder is usable as `Decoder()`).
    if len(defaults) != len(arguments):
        raise TypeError(f"{class_name}.__init__ must give every argument a default.")
    return [(argument.arg, default) for argument, default in zip(arguments, defaults)]
