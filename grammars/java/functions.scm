; Method and constructor definitions: @definition.function with its @name.

(method_declaration name: (identifier) @name) @definition.function
(constructor_declaration name: (identifier) @name) @definition.function
