"""The one PropertyGroup Kiln keeps on the Scene: `scene.kiln`.

Only what the artist sets lives here (saved with the .blend, undoable). Job state
(progress, engine state, last error) is runtime state in operators/session.py.
"""

import bpy
from bpy.props import (BoolProperty, EnumProperty, FloatProperty, FloatVectorProperty,
                       IntProperty, PointerProperty, StringProperty)

SEED_MAX = 2**31 - 1

TEXTURE_SIZES = (
    ('0', "Auto", "The model's default texture size"),
    ('256', "256", "256 x 256 pixels"),
    ('512', "512", "512 x 512 pixels"),
    ('1024', "1024", "1024 x 1024 pixels"),
    ('2048', "2048", "2048 x 2048 pixels"),
)


class KilnSceneProps(bpy.types.PropertyGroup):
    # -- input
    mode: EnumProperty(
        name="Input", default='TEXT',
        items=(('TEXT', "Text", "Generate from a prompt", 'FONT_DATA', 0),
               ('IMAGE', "Image", "Generate from a picture", 'IMAGE_DATA', 1)))
    prompt: StringProperty(name="Prompt", description="What to make, e.g. 'a red chair'")
    image_source: EnumProperty(
        name="Picture", default='FILE',
        items=(('FILE', "File", "A picture file on disk"),
               ('BLENDER', "Blender Image", "An image already loaded in Blender")))
    image_path: StringProperty(name="Picture file", subtype='FILE_PATH')
    image: PointerProperty(name="Image", type=bpy.types.Image)
    background: EnumProperty(
        name="Background", default='ALPHA',
        description="How the picture's background is removed before generating",
        items=(('ALPHA', "Alpha", "Transparent pixels are background (a picture without "
                "alpha has the colour of its corners keyed out)"),
               ('KEY', "Colour key", "Pixels close to the key colour are background")))
    key_color: FloatVectorProperty(
        name="Key colour", subtype='COLOR', size=3, min=0.0, max=1.0,
        default=(1.0, 1.0, 1.0))
    key_tolerance: FloatProperty(
        name="Tolerance", default=0.1, min=0.0, max=1.0,
        description="How far (0-1) a colour may be from the key and still count as background")

    # -- sampling
    seed: IntProperty(name="Seed", default=0, min=0, max=SEED_MAX)
    steps: IntProperty(name="Steps", default=12, min=1, max=200,
                       description="Sampling steps: more is slower and finer")
    guidance: FloatProperty(name="Guidance", default=3.0, min=0.0, max=30.0,
                            description="How strongly the result follows the prompt")
    variations: IntProperty(name="Variations", default=4, min=1, max=16,
                            description="How many seeds the Variations button makes")

    # -- output
    resolution: IntProperty(name="Grid", default=0, min=0, max=512,
                            description="Extraction grid resolution (0 = model default)")
    faces: IntProperty(name="Face budget", default=20_000, min=0, max=500_000,
                       description="Most faces in the mesh (0 = no limit)")
    texture: EnumProperty(name="Texture", items=TEXTURE_SIZES, default='0')
    texture_mode: EnumProperty(
        name="Colour", default='UV',
        items=(('UV', "Texture", "Bake colour into a UV texture"),
               ('VERTEX', "Vertex colours", "Store colour per vertex")))
    smooth: BoolProperty(name="Smooth shading", default=True)
    target_size: FloatProperty(name="Size", default=2.0, min=0.001, soft_max=100.0,
                               subtype='DISTANCE', unit='LENGTH',
                               description="Largest dimension of the imported object")


def register():
    bpy.utils.register_class(KilnSceneProps)
    bpy.types.Scene.kiln = PointerProperty(type=KilnSceneProps)


def unregister():
    del bpy.types.Scene.kiln
    bpy.utils.unregister_class(KilnSceneProps)
