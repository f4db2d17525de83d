"""The one PropertyGroup Kiln keeps on the Scene: `scene.kiln`.

Only what the artist sets lives here (saved with the .blend, undoable). Job state
(progress, engine state, last error) is runtime state in runtime/session.py.
"""

import os

import bpy
from bpy.props import (BoolProperty, CollectionProperty, EnumProperty, FloatProperty,
                       FloatVectorProperty, IntProperty, PointerProperty, StringProperty)

from .engine import protocol
from .runtime.jobs import SEED_MAX
MAX_PICTURES = protocol.MAX_VIEWS
REFINE_MAX = protocol.NUMBER_FIELDS["refine_steps"][2]

PICTURE_SOURCES = (('FILE', "File", "A picture file on disk"),
                   ('BLENDER', "Blender Image", "An image already loaded in Blender"))

DIRECTIONS = (
    ('FRONT', "Front", "Taken from the front (Blender's Front view), slightly from above"),
    ('RIGHT', "Right", "Taken from the right side (Blender's Right view)"),
    ('BACK', "Back", "Taken from the back"),
    ('LEFT', "Left", "Taken from the left side"),
    ('TOP', "Top", "Taken from straight above (Blender's Top view)"),
    ('CUSTOM', "Custom", "Azimuth and elevation of your own"),
)


class KilnPicture(bpy.types.PropertyGroup):
    """One picture of the Pictures input and the direction it was taken from."""
    source: EnumProperty(name="Picture", default='FILE', items=PICTURE_SOURCES)
    path: StringProperty(name="Picture file", subtype='FILE_PATH')
    image: PointerProperty(name="Image", type=bpy.types.Image)
    direction: EnumProperty(name="Direction", items=DIRECTIONS, default='FRONT',
                            description="Where the camera stood when the picture was taken")
    azimuth: FloatProperty(
        name="Azimuth", default=0.0, min=protocol.VIEW_FIELDS["azimuth"][1],
        max=protocol.VIEW_FIELDS["azimuth"][2],
        description="Degrees around the object: 0 front, 90 right, 180 back, 270 left")
    elevation: FloatProperty(
        name="Elevation", default=protocol.DEFAULT_ELEVATION,
        min=protocol.VIEW_FIELDS["elevation"][1], max=protocol.VIEW_FIELDS["elevation"][2],
        description="Degrees above the ground: 0 level, 90 from the top")

    def label(self) -> str:
        """The picture's name, or "" when none is chosen yet."""
        if self.source == 'FILE':
            return os.path.basename(self.path.strip())
        return self.image.name if self.image is not None else ""

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
               ('IMAGE', "Image", "Generate from a picture", 'IMAGE_DATA', 1),
               ('VIEWS', "Pictures", "Reconstruct an object from 1-4 pictures of it, each "
                "with the direction it was taken from", 'RENDERLAYERS', 2)))
    prompt: StringProperty(name="Prompt", description="What to make, e.g. 'a red chair'")
    image_source: EnumProperty(name="Picture", default='FILE', items=PICTURE_SOURCES)
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
    pictures: CollectionProperty(type=KilnPicture)
    picture_index: IntProperty(name="Active picture", default=0)
    refine_steps: IntProperty(
        name="Refine", default=0, min=0, max=REFINE_MAX,
        description="Optimisation steps that bring the result closer to its picture(s) "
                    "(0 = off; a fraction of a second each)")

    # -- restyle (the selected mesh; seed, steps, guidance and texture size are shared)
    restyle_prompt: StringProperty(
        name="Restyle prompt",
        description="What the selected object should look like, e.g. 'a blue chair'")
    restyle_strength: FloatProperty(
        name="Strength", default=protocol.DEFAULT_STRENGTH,
        min=protocol.RESTYLE_NUMBER_FIELDS["strength"][1],
        max=protocol.RESTYLE_NUMBER_FIELDS["strength"][2],
        description="How far the new colours may move from the object's own: 0 keeps "
                    "them, 1 starts afresh from the prompt")

    # -- morph (operators/morph.py): in-betweens of the two selected Kiln objects
    morph_steps: IntProperty(
        name="In-betweens", default=3, min=1, max=protocol.MAX_MORPH_STEPS,
        description="How many objects to make between the two selected ones")
    morph_path: EnumProperty(
        name="Path", default='LATENT',
        items=(('LATENT', "Latent", "Blend the two final latents and decode the blend: "
                "even steps from one to the other"),
               ('NOISE', "Noise", "Blend the flow's starting noise and the two prompts' "
                "guidance: every in-between is a sample of the model, but the middle ones "
                "can fall apart")))

    # -- prompt list (operators/prompt_list.py): a text block or a file, one prompt a line
    list_source: EnumProperty(
        name="List", default='TEXT',
        items=(('TEXT', "Text Block", "A text block of this .blend (Text Editor)"),
               ('FILE', "File", "A text file on disk")))
    list_text: PointerProperty(
        name="Prompt list", type=bpy.types.Text,
        description="One prompt a line, optionally 'PROMPT | SEED'; # starts a comment")
    list_path: StringProperty(
        name="Prompt list file", subtype='FILE_PATH',
        description="A text file: one prompt a line, optionally 'PROMPT | SEED'")

    # -- sampling
    seed: IntProperty(name="Seed", default=0, min=0, max=SEED_MAX)
    steps: IntProperty(name="Steps", default=12, min=1, max=200,
                       description="Sampling steps: more is slower and finer")
    guidance: FloatProperty(name="Guidance", default=3.0, min=0.0, max=30.0,
                            description="How strongly the result follows the prompt")
    variations: IntProperty(name="Variations", default=4, min=1, max=16,
                            description="How many seeds the Variations button makes")
    sampler: EnumProperty(
        name="Sampler", default='AUTO',
        items=(('AUTO', "Auto", "The model's default sampler"),
               ('EULER', "Euler", "Euler steps: one model call per step"),
               ('HEUN', "Heun", "Heun steps: two model calls per step, finer at few steps")))

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
    extractor: EnumProperty(
        name="Extractor", default='AUTO',
        items=(('AUTO', "Auto", "The model's default mesh extractor"),
               ('MC', "Marching cubes", "Smooth surfaces"),
               ('FLEXICUBES', "FlexiCubes", "Keeps sharp edges and flat faces")))
    smooth: BoolProperty(name="Smooth shading", default=True)
    output_format: EnumProperty(
        name="Format", default='GLB',
        items=(('GLB', "Mesh (GLB)", "A textured mesh"),
               ('SPLAT', "Gaussian Splats", "3D Gaussian splats (a 3DGS .ply), imported as "
                "a point cloud carrying the splat attributes")))
    target_size: FloatProperty(name="Size", default=2.0, min=0.001, soft_max=100.0,
                               subtype='DISTANCE', unit='LENGTH',
                               description="Largest dimension of the imported object")


def register():
    bpy.utils.register_class(KilnPicture)
    bpy.utils.register_class(KilnSceneProps)
    bpy.types.Scene.kiln = PointerProperty(type=KilnSceneProps)


def unregister():
    del bpy.types.Scene.kiln
    bpy.utils.unregister_class(KilnSceneProps)
    bpy.utils.unregister_class(KilnPicture)
