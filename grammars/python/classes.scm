; Class definitions: @definition.class with its @name.

(class_definition name: (identifier) @name) @definition.class
